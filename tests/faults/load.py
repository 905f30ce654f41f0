"""A steady mixed load, as the people who use the exchange make it, that survives faults.

Foundations donate and refund, communities post money and shift needs, register volunteers and
confirm delivery, volunteers pledge and accept the shifts proposed to them. Every write carries
an `Idempotency-Key` and is retried with the same key and body while the exchange answers
"retry later" (a dropped connection, a time-out, 5xx, 429), exactly as a careful client would:
so every posting the exchange acknowledges (202) is recorded here, and only those, and the
fault suite can hold the exchange to its promise for each of them.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests import factories as f

RETRY_LATER = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Acked:
    """One posting the exchange answered 202 for."""

    posting_id: uuid.UUID
    kind: str
    at: float  # time.monotonic() when the 202 arrived


@dataclass
class Tally:
    """What the load saw, for the failure messages and the operator's notes."""

    answers: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    """Writes refused for good (4xx), by kind, status and the first reason: a fault must not
    turn into refusals, so the verdict shows them."""
    retries: int = 0
    abandoned: int = 0
    longest_wait: float = 0.0


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    """A time tomorrow in Nanjing (UTC+8), so shifts and deadlines stay in the future."""
    now = datetime.now(UTC) + timedelta(hours=8)
    day = (now + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


class MixedLoad:
    """Posts a mix of every kind of write from a thread until `stop()`; records each 202.

    `rate` is the number of steps a second (each step one write, plus a read now and then);
    small on purpose: two cores run the whole exchange, and a fault suite is about what is
    kept, not about throughput."""

    def __init__(
        self,
        url: str,
        foundation: str,
        community: str,
        *,
        seed: int = 7,
        rate: float = 12.0,
        retry_for: float = 120.0,
    ) -> None:
        self.url = url
        self.foundation = foundation
        self.community = community
        self.rng = random.Random(seed)
        self.rate = rate
        self.retry_for = retry_for
        self.acked: list[Acked] = []
        self.tally = Tally()
        self.funds: list[str] = []
        self.donations: list[tuple[str, str]] = []
        self.volunteers: list[tuple[str, str]] = []  # (id, token)
        self.accepted: set[str] = set()
        self.confirmed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client(base_url=url, timeout=10)
        self._step = 0
        self.error: BaseException | None = None

    # ---- life ----

    def start(self) -> MixedLoad:
        """Open two funds (and wait for them to exist), then post in the background."""
        if not self.funds:
            for i in range(2):
                body = f.fund(name=f"故障演练基金{i}", districts=["鼓楼区"])
                answer = self.write("POST", "/v1/funds", body, self.foundation, "fund")
                if answer is not None:
                    self.funds.append(answer["fund_id"])
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mixed-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop posting; a write in flight is still retried until acknowledged or abandoned."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.retry_for + 30)
            assert not self._thread.is_alive(), "the load did not stop"
        if self.error is not None:
            raise AssertionError(f"the load failed: {self.error!r}") from self.error

    def halt(self) -> None:
        """Stop at once, without waiting for writes in flight (a test that failed): no load
        may outlive its test and post into the next one."""
        self.retry_for = 0.0
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def close(self) -> None:
        """Stop (if still running) and release the HTTP connections."""
        self.halt()
        self._client.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.step()
                self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))
        except BaseException as exc:  # reported by stop()
            self.error = exc

    # ---- one step of the mix ----

    def step(self) -> None:
        """One write of the mix; every few steps, volunteers and communities answer proposals."""
        self._step += 1
        n, rng = self._step, self.rng
        choice = n % 8
        if choice == 0 and self.funds:
            fund = rng.choice(self.funds)
            body = f.donation(rng.randrange(20_000, 80_000), donor=f"居民{n}")
            answer = self.write(
                "POST", f"/v1/funds/{fund}/donations", body, self.foundation, "donation"
            )
            if answer is not None:
                self.donations.append((fund, answer["donation_id"]))
        elif choice == 1 and self.donations and n % 24 == 1:
            fund, donation = rng.choice(self.donations)
            body = {"amount": {"amount_minor": 1_000, "currency": "CNY"}, "reason": "捐赠人撤回"}
            self.write(
                "POST",
                f"/v1/funds/{fund}/donations/{donation}/refunds",
                body,
                self.foundation,
                "refund",
            )
        elif choice in (1, 5):
            amount = rng.randrange(5_000, 30_000)
            body = f.money_need(amount, title=f"助餐补贴{n}", deadline=tomorrow_at(20).isoformat())
            self.write("POST", "/v1/needs", body, self.community, "need")
        elif choice in (2, 6):
            start = tomorrow_at(9 + n % 8)
            body = f.volunteer_need(
                title=f"送餐{n}",
                volunteers_needed=1,
                deadline=(start + timedelta(hours=2)).isoformat(),
                shift={
                    "start": start.isoformat(),
                    "end": (start + timedelta(hours=1)).isoformat(),
                },
            )
            self.write("POST", "/v1/needs", body, self.community, "need")
        elif choice == 3:
            self.register_and_pledge(n)
        elif choice == 4:
            self.accept_some()
        elif choice == 7:
            self.confirm_some()

    def register_and_pledge(self, n: int) -> None:
        """A community registers a volunteer, who pledges tomorrow's daytime with their token."""
        body = {"pseudonym": f"志愿者{n}", "home": {"district": "鼓楼区", "street": "江东街道"}}
        answer = self.write("POST", "/v1/volunteers", body, self.community, "registration")
        if answer is None or not answer.get("volunteer_token"):
            return  # a replayed answer carries no token; nothing more to do with this one
        volunteer, token = answer["volunteer_id"], answer["volunteer_token"]
        self.volunteers.append((volunteer, token))
        pledge = f.pledge(
            pseudonym=f"志愿者{n}",
            availability=[
                {"start": tomorrow_at(8).isoformat(), "end": tomorrow_at(19).isoformat()}
            ],
            weekly_hour_limit=40,
        )
        self.write("PUT", f"/v1/volunteers/{volunteer}/pledge", pledge, token, "pledge")

    def accept_some(self) -> None:
        """The most recent volunteer with a proposal accepts it."""
        for volunteer, token in self.volunteers[-4:]:
            for match in self.read_matches(token):
                if match["status"] == "proposed" and match["match_id"] not in self.accepted:
                    if match.get("volunteer_id") != volunteer:
                        continue
                    self.accepted.add(match["match_id"])
                    self.write(
                        "POST", f"/v1/matches/{match['match_id']}/accept", {}, token, "accept"
                    )
                    return

    def confirm_some(self) -> None:
        """The community confirms an accepted shift, or money received on a proposed grant."""
        for match in self.read_matches(self.community):
            mid = match["match_id"]
            if mid in self.confirmed:
                continue
            if match["status"] == "accepted" and match["supply"] == "volunteer":
                body: dict[str, Any] = {"minutes_served": 60}
            elif match["status"] == "proposed" and match["supply"] == "money" and match["amount"]:
                body = {"amount_received": match["amount"]}
            else:
                continue
            self.confirmed.add(mid)
            self.write("POST", f"/v1/matches/{mid}/confirm", body, self.community, "confirm")
            return

    # ---- the careful client ----

    def read_matches(self, token: str) -> list[dict[str, Any]]:
        """The caller's newest matches, or none while the exchange cannot answer."""
        try:
            r = self._client.get(
                "/v1/matches", params={"limit": 20}, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError:
            return []
        if r.status_code != 200:
            return []
        items: list[dict[str, Any]] = r.json().get("items", [])
        return items

    def write(
        self, method: str, path: str, body: dict[str, Any], token: str, kind: str
    ) -> dict[str, Any] | None:
        """Send one write until it is acknowledged (returns the answer) or finally refused or
        abandoned (returns None). Retries reuse the key and body, so at most one posting."""
        key = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        first = time.monotonic()
        deadline: float | None = None
        while True:
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.retry_for
            try:
                r = self._client.request(method, path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                self.tally.answers[type(exc).__name__] += 1
            else:
                self.tally.answers[str(r.status_code)] += 1
                if r.status_code == 202:
                    answer: dict[str, Any] = r.json()
                    now = time.monotonic()
                    self.acked.append(Acked(uuid.UUID(answer["posting_id"]), kind, now))
                    self.tally.longest_wait = max(self.tally.longest_wait, now - first)
                    return answer
                if r.status_code not in RETRY_LATER:
                    self.tally.refusals[f"{kind} {r.status_code}: {_first_reason(r)}"] += 1
                    return None  # refused for good (4xx): nothing was written
            self.tally.retries += 1
            if deadline is not None and time.monotonic() > deadline:
                self.tally.abandoned += 1
                return None
            time.sleep(0.5)  # back off, as a client told "retry later" would


def _first_reason(r: httpx.Response) -> str:
    """The first field and reason of a refusal, for the verdict."""
    try:
        detail = r.json().get("detail")
    except ValueError:
        return r.text[:120]
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return f"{detail[0].get('field')}: {detail[0].get('reason')}"[:160]
    return str(detail)[:160]
