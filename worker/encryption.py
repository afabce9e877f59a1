"""AES-256 encryption of a written PDF with pikepdf (qpdf): owner and user passwords, permissions."""
from __future__ import annotations

import io

import pikepdf

from shared.options import Encryption, Permission

_ALLOWED_BY = {
    Permission.PRINT: ("print_lowres", "print_highres"),
    Permission.COPY: ("extract",),
    Permission.MODIFY: ("modify_other",),
    Permission.ANNOTATE: ("modify_annotation",),
    Permission.FILL_FORMS: ("modify_form",),
    Permission.ASSEMBLE: ("modify_assembly",),
}


def permissions(granted: list[Permission]) -> pikepdf.Permissions:
    """Only what was granted, plus text extraction for accessibility (assistive technology must read the file)."""
    flags = {flag: False for names in _ALLOWED_BY.values() for flag in names}
    flags.update({flag: True for permission in granted for flag in _ALLOWED_BY[permission]})
    return pikepdf.Permissions(accessibility=True, **flags)


def encrypt(content: bytes, encryption: Encryption) -> bytes:
    """R=6 (AES-256, PDF 2.0's and Acrobat X's scheme); no user password means the file opens without one."""
    with pikepdf.open(io.BytesIO(content)) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(owner=encryption.owner_password, user=encryption.user_password or "",
                                                    R=6, allow=permissions(encryption.permissions)))
    return out.getvalue()
