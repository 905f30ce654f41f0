"""Collecting what one input causes, with ids derived from the input's, so a replay of the
same input writes the same bytes."""

from __future__ import annotations

import uuid

from schemas.envelope import Envelope, derive_id
from schemas.messages import (
    MatchProposed,
    Message,
    PostingRefused,
    Problem,
)
from services.domain.matching.state import MatcherState, OpenNeed, Proposal, watch
from services.domain.outputs import derived


class Decisions:
    """Collects what one input causes, numbering each kind for its derived ids."""

    def __init__(self, cause: Envelope[Message]) -> None:
        self.cause = cause
        self.out: list[Envelope[Message]] = []
        self.routes: dict[uuid.UUID, int] = {}
        """The partition each cross-partition message goes to, by event id."""
        self._n: dict[str, int] = {}

    def _label(self, kind: str) -> str:
        n = self._n.get(kind, 0)
        self._n[kind] = n + 1
        return f"{kind}/{n}"

    def propose(
        self,
        state: MatcherState,
        need: OpenNeed,
        fields: dict[str, object],
        rule: str,
        hold: tuple[uuid.UUID, int] | None = None,
    ) -> Proposal:
        """A new proposal for `need` (`hold`: the hold id and owner of supply held elsewhere)."""
        label = self._label("proposal")
        match_id = derive_id(self.cause.event_id, label.replace("proposal", "match"))
        payload = MatchProposed(
            match_id=match_id, need_id=need.need_id, zone=need.zone, rule=rule, **fields
        )
        self.out.append(
            derived(self.cause, payload, label=label, stream_id=f"match:{match_id}", stream_seq=1)
        )
        amount = payload.amount.amount_minor if payload.amount else 1
        proposal = Proposal(
            match_id,
            need.need_id,
            payload.supply,
            amount,
            payload.volunteer_id,
            payload.fund_id,
            None if payload.shift is None else (payload.shift.start, payload.shift.end),
            proposed_at=self.cause.recorded_at,
            hold_id=hold[0] if hold else None,
            owner_partition=hold[1] if hold else None,
        )
        proposal.order = len(state.proposals)
        state.proposals[match_id] = proposal
        state.index_proposal(proposal)
        watch(state, proposal)
        return proposal

    def about(self, proposal: Proposal, payload: Message, kind: str) -> None:
        """A decision on an existing match (accepted, declined, withdrawn, ...)."""
        label = "decided" if kind == "decided" else self._label(kind)
        self.out.append(
            derived(
                self.cause,
                payload,
                label=label,
                stream_id=f"match:{proposal.match_id}",
                stream_seq=proposal.next_seq(),
            )
        )

    def send(
        self, payload: Message, partition: int, label: str, stream_id: str, stream_seq: int
    ) -> uuid.UUID:
        """A request or reply for another partition of matcher.inputs; returns its id."""
        envelope = derived(
            self.cause,
            payload,
            label=self._label(label),
            stream_id=stream_id,
            stream_seq=stream_seq,
        )
        self.out.append(envelope)
        self.routes[envelope.event_id] = partition
        return envelope.event_id

    def refuse(self, reason: str, fld: str | None = None) -> None:
        """The command cannot be done now; the poster reads why on the posting's status.

        A refusal is the one event of its own stream (`posting:<id>`): the match's stream
        numbers only the match's own lifecycle, so the two never share a sequence number."""
        payload = PostingRefused(
            posting_id=self.cause.event_id,
            posting_type=self.cause.event_type,
            problems=[Problem(field=fld, reason=reason)],
        )
        self.out.append(
            derived(
                self.cause,
                payload,
                label="decided",
                stream_id=f"posting:{self.cause.event_id}",
                stream_seq=1,
            )
        )
