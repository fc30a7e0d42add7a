"""A fake bank's status reports: ISO 20022 ``pain.002.001.03`` documents, as a bank sends
them back for a ``pain.001`` file (ADR 0022).

:func:`status_report` writes one from statuses at every level (group, payment block,
transaction); :func:`answer_file` reads a released pain.001 and answers each payment,
rejecting a seeded share with a reason code, as the demo's and the tests' bank.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

NS_002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"
NS_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
REJECT_REASONS = ("AC01", "AC04", "AM04", "MS03")  # wrong account, closed, no funds, other


@dataclass(frozen=True, slots=True)
class Tx:
    """One payment's status: ``code`` (ACSC, RJCT, ...), its reason code and words."""

    end_to_end_id: str
    code: str
    reason: str = ""
    info: str = ""
    bank_ref: str = ""


@dataclass(frozen=True, slots=True)
class Block:
    """A payment block's status (``code`` may be empty) and its payments' lines."""

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
    created: str = "2026-12-08T09:00:00",
    group_code: str = "",
    group_reason: str = "",
    blocks: Sequence[Block] = (),
) -> bytes:
    """A pain.002.001.03 document answering message ``original_msg_id``."""
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS_002}"><CstmrPmtStsRpt>',
        f"<GrpHdr><MsgId>{escape(report_id)}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
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


def answer_file(
    pain001: bytes, *, seed: int = 0, reject_share: float = 0.0, accepted_code: str = "ACSC"
) -> bytes:
    """The bank's answer to a pain.001 file Tally released: each payment ``accepted_code``,
    or RJCT with a reason for a seeded share of them (the group PART when some are)."""
    # The file is Tally's own output (the rail validated it before releasing it).
    root = ET.fromstring(pain001)  # noqa: S314
    ns = {"p": NS_001}
    msg_id = root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", default="", namespaces=ns)
    rng = random.Random(f"{seed}|{msg_id}")
    blocks: list[Block] = []
    rejected = 0
    for block in root.iterfind("p:CstmrCdtTrfInitn/p:PmtInf", ns):
        txs: list[Tx] = []
        for e2e in block.iterfind("p:CdtTrfTxInf/p:PmtId/p:EndToEndId", ns):
            ref = f"BK{rng.getrandbits(40):010x}"
            if rng.random() < reject_share:
                rejected += 1
                txs.append(Tx(e2e.text or "", "RJCT", rng.choice(REJECT_REASONS), bank_ref=ref))
            else:
                txs.append(Tx(e2e.text or "", accepted_code, bank_ref=ref))
        blocks.append(Block(block.findtext("p:PmtInfId", default="", namespaces=ns), txs=txs))
    total = sum(len(b.txs) for b in blocks)
    group = "RJCT" if rejected == total else ("PART" if rejected else accepted_code)
    return status_report(msg_id, report_id=f"RPT{msg_id[3:]}"[:35], group_code=group, blocks=blocks)
