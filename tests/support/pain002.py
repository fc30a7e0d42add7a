"""pain.002.001.03 status reports as a bank would send them, for the bank file rail's tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

NS = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"


@dataclass(frozen=True)
class Tx:
    end_to_end_id: str
    code: str
    reason: str = ""  # an ExternalStatusReason1Code such as AC01
    info: str = ""
    bank_ref: str = ""


@dataclass(frozen=True)
class Block:
    block_id: str
    code: str = ""
    reason: str = ""
    txs: Sequence[Tx] = field(default_factory=tuple)


def _reason(code: str, info: str) -> str:
    if not code and not info:
        return ""
    rsn = f"<Rsn><Cd>{escape(code)}</Cd></Rsn>" if code else ""
    extra = f"<AddtlInf>{escape(info)}</AddtlInf>" if info else ""
    return f"<StsRsnInf>{rsn}{extra}</StsRsnInf>"


def status_report(
    original_msg_id: str,
    *,
    report_id: str = "BANK-RPT-1",
    group_code: str = "",
    group_reason: str = "",
    blocks: Sequence[Block] = (),
) -> bytes:
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS}"><CstmrPmtStsRpt>',
        f"<GrpHdr><MsgId>{escape(report_id)}</MsgId><CreDtTm>2026-12-08T09:00:00</CreDtTm></GrpHdr>",
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>{escape(original_msg_id)}</OrgnlMsgId>",
        "<OrgnlMsgNmId>pain.001.001.03</OrgnlMsgNmId>",
    ]
    if group_code:
        parts.append(f"<GrpSts>{group_code}</GrpSts>{_reason(group_reason, '')}")
    parts.append("</OrgnlGrpInfAndSts>")
    for block in blocks:
        parts.append(f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{escape(block.block_id)}</OrgnlPmtInfId>")
        if block.code:
            parts.append(f"<PmtInfSts>{block.code}</PmtInfSts>{_reason(block.reason, '')}")
        for tx in block.txs:
            ref = f"<AcctSvcrRef>{escape(tx.bank_ref)}</AcctSvcrRef>" if tx.bank_ref else ""
            parts.append(
                f"<TxInfAndSts><OrgnlEndToEndId>{escape(tx.end_to_end_id)}</OrgnlEndToEndId>"
                f"<TxSts>{tx.code}</TxSts>{_reason(tx.reason, tx.info)}{ref}</TxInfAndSts>"
            )
        parts.append("</OrgnlPmtInfAndSts>")
    parts.append("</CstmrPmtStsRpt></Document>")
    return "".join(parts).encode()
