"""Time-based one-time passwords (RFC 6238) with pyotp."""

from __future__ import annotations

from datetime import datetime

import pyotp

STEP_S = 30
# One step either side tolerates a client clock a little off.
VALID_WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, issuer: str = "Tally") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def code_at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def matching_step(secret: str, code: str, when: datetime, after_step: int) -> int | None:
    """The time step ``code`` belongs to, if it is valid at ``when`` and newer than ``after_step``.

    Refusing steps at or before the last one used stops a code from being replayed.
    """
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(when.timestamp()) // STEP_S
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if step > after_step and pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
