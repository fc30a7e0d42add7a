"""Cryptographic building blocks: password hashing, TOTP, secret box, pseudonyms, signatures."""
