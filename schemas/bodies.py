"""What clients type over HTTP, where it differs from what the log carries.

A client posts a need's description, a volunteer's pseudonym, a donor's label, a donation's
note and a volunteer's reasons as plain text; the gateway seals them under the subject's key
before anything is written (docs/privacy.md), so the wire specs (`schemas.specs`) carry
`Sealed | text` while these request bodies accept text only. Same names as the wire specs, so
the HTTP API's schema is what it was before sealing. Every other rule is inherited: one set of
rules validates a posting wherever it is seen.
"""

from __future__ import annotations

from schemas import specs
from schemas.common import Description, Name


class NeedSpec(specs.NeedSpec):
    """A community's need: volunteer hours for a shift, an amount of money, or goods.

    Carries how many people are served, never who they are. The description is kept sealed
    under the need's own key, and can be forgotten."""

    description: Description = ""


class DonationSpec(specs.DonationSpec):
    """Money given into a fund. The donor is a label the foundation chooses (may be 匿名). The
    label (unless it is a registered organisation's name) and the note are kept sealed under
    the donation's own key, and can be forgotten."""

    donor: Name
    note: Description = ""


class PledgeSpec(specs.PledgeSpec):
    """A volunteer's offer of time. Pseudonymous: no phone, ID number or address, ever. The
    pseudonym is kept sealed under the volunteer's own key, and can be forgotten."""

    pseudonym: Name
