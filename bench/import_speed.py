"""Bulk import speed: 1,000 organisations and 10,000 volunteers with their pledges, on the
embedded default, against the raw HTTP posting rate as the baseline (issue #16).

Starts the exchange in a scratch directory (as bench/latency.py does) and measures, in order:

- **baseline**: `--baseline` volunteers registered one by one over HTTP, as a client without
  the import would: `POST /v1/volunteers` then `PUT /v1/volunteers/{id}/pledge` with the
  volunteer's token, `--connections` at a time. Its rate (volunteers/s, and postings/s) is what
  the import is compared with.
- **organisations**: one CSV of `--orgs` rows posted to `POST /v1/imports/orgs` (operator).
- **volunteers**: `--volunteers` rows with their pledges, in files of `--per-file` rows, each
  for its own community, posted to `POST /v1/imports/volunteers`, one file after another.
  "Acknowledged" is the last answer (every row durable in the outbox); "accepted" is when every
  imported pledge is in the read model the read API serves (`rm_pledges`, i.e. decided by
  intake-pledges and projected by the ledger), checked once through `GET /v1/volunteers/{id}`.
- **command line**: `--cli-volunteers` more through `exchange import volunteers` (a process of
  its own writing to PostgreSQL; the gateway relay's sweep publishes what it wrote).

    .venv/bin/python bench/import_speed.py                         # the goal's sizes
    .venv/bin/python bench/import_speed.py --orgs 100 --volunteers 1000 --baseline 200
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import factories as f  # noqa: E402
from tests.e2e.harness import Exchange  # noqa: E402

DISTRICTS = {
    "鼓楼区": ("江东街道", "中央门街道"),
    "雨花台区": ("西善桥街道",),
    "江宁区": ("秣陵街道",),
    "建邺区": ("南苑街道",),
}
SKILLS = (
    "驾驶",
    "急救",
    "助老护理",
    "辅导",
    "烹饪",
    "送餐",
    "看护儿童",
    "法律",
    "心理疏导",
    "巡逻",
)
TIMES = ("周一至周五 09:00-12:00", "周六 14:00-17:00；周日 09:00-11:00", "每天 18:00-20:00")


def progress(message: str) -> None:
    print(f"[import {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def operator_token(ex: Exchange) -> str:
    env = {**os.environ, "EXCHANGE_VAR_DIR": str(ex.var_dir)}
    env.pop("DATABASE_URL", None)
    args = [sys.executable, "-m", "services.cli", "operators", "create", "运营-基准"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1].split(": ", 1)[1]


def orgs_csv(n: int) -> bytes:
    """`n` organisations: a foundation and a social organisation per street, the rest
    communities."""
    rows = ["名称,类型,区,街道"]
    places = [(d, s) for d, streets in DISTRICTS.items() for s in streets]
    for i in range(n):
        district, street = places[i % len(places)]
        kind = ("基金会", "社会组织", "社区")[min(i // len(places), 2)]
        rows.append(f"{street}第{i:04d}号{kind},{kind},{district},{street}")
    return ("\r\n".join(rows) + "\r\n").encode("gb18030")


def volunteers_csv(prefix: str, n: int, rng: random.Random) -> bytes:
    rows = ["编号,称呼,区,街道,技能,可服务时间,每周小时上限,出行范围"]
    for i in range(n):
        district = rng.choice(list(DISTRICTS))
        street = rng.choice(DISTRICTS[district])
        skills = "、".join(rng.sample(SKILLS, 2))
        name = rng.choice("王李张刘陈杨赵黄周吴") + rng.choice(("师傅", "阿姨", "大姐", "老师"))
        hours = rng.randint(2, 12)
        rows.append(
            f"{prefix}-{i:05d},{name},{district},{street},{skills},{rng.choice(TIMES)},{hours},本区"
        )
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


async def baseline(url: str, community: str, n: int, connections: int) -> dict[str, float]:
    """Volunteers registered and pledged one by one over HTTP, `connections` at a time."""
    headers = {"Authorization": f"Bearer {community}"}
    pledge = f.pledge()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {"pseudonym": f"基准{i}", "home": {"district": "鼓楼区"}}
                r = await client.post("/v1/volunteers", json=body, headers=headers)
                r.raise_for_status()
                vid, token = r.json()["volunteer_id"], r.json()["volunteer_token"]
                r = await client.put(
                    f"/v1/volunteers/{vid}/pledge",
                    json=pledge | {"pseudonym": f"基准{i}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        took = time.monotonic() - start
    return {"volunteers": n, "seconds": took, "rate": n / took, "postings_rate": 2 * n / took}


def cli_import(
    ex: Exchange, dsn: str, org: dict[str, Any], n: int, rng: random.Random, tmp: str
) -> dict[str, float]:
    """`n` volunteers through `exchange import volunteers` (its own process, writing to
    PostgreSQL): seconds until it is done, and until every pledge is visible."""
    file = Path(tmp) / "cli.csv"
    file.write_bytes(volunteers_csv("CLI", n, rng))
    env = {**os.environ, "EXCHANGE_VAR_DIR": str(ex.var_dir)}
    env.pop("DATABASE_URL", None)
    args = [sys.executable, "-m", "services.cli", "import", "volunteers", str(file)]
    args += ["--org", org["id"], "--sign-ins", str(Path(tmp) / "cli-sign-ins.csv")]
    progress(f"command line: importing {n} volunteers")
    start = time.monotonic()
    subprocess.run(args, env=env, check=True, capture_output=True)
    written = time.monotonic() - start
    visible = asyncio.run(pledges_visible(dsn, [org["id"]], n, start))
    return {"written": written, "visible": visible}


async def pledges_visible(dsn: str, org_ids: list[str], want: int, since: float) -> float:
    """Seconds from `since` until `want` pledges of these organisations are in the read model."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            got = await conn.fetchval(
                "SELECT count(*) FROM rm_pledges WHERE org_id = ANY($1::text[])", org_ids
            )
            if got >= want:
                return time.monotonic() - since
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--volunteers", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=500)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cli-volunteers", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("EXCHANGE_RATE_WRITES_PER_SECOND", "0")  # one client, many postings
    os.environ.setdefault("EXCHANGE_RATE_READS_PER_SECOND", "0")
    rng = random.Random(16)
    files = [
        volunteers_csv(f"V{k:02d}", min(args.per_file, args.volunteers - k * args.per_file), rng)
        for k in range(-(-args.volunteers // args.per_file))
    ]
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        ex = Exchange(Path(tmp) / "var").start()
        try:
            ex.wait_healthy()
            url, dsn = ex.url, ex.state["database_url"]
            operator = {"Authorization": f"Bearer {operator_token(ex)}"}
            http = httpx.Client(base_url=url, timeout=600)
            base_org = ex.create_org("community", "基准社区", "鼓楼区", "江东街道")
            progress(f"baseline: {args.baseline} volunteers one by one")
            raw = asyncio.run(baseline(url, base_org, args.baseline, args.connections))

            progress(f"importing {args.orgs} organisations")
            start = time.monotonic()
            r = http.post(
                "/v1/imports/orgs",
                content=orgs_csv(args.orgs),
                headers={**operator, "Content-Type": "text/csv"},
            )
            r.raise_for_status()
            orgs_seconds = time.monotonic() - start
            report = r.json()
            assert report["created"] == args.orgs, report["problems"][:3]
            communities = [s for s in report["sign_ins"] if s["ref"] == "community"]
            assert len(communities) > len(files), "too few communities for the files"

            progress(f"importing {args.volunteers} volunteers in {len(files)} files")
            start = time.monotonic()
            last: dict[str, Any] = {}
            for data, org in zip(files, communities, strict=False):
                r = http.post(
                    "/v1/imports/volunteers",
                    content=data,
                    headers={"Authorization": f"Bearer {org['token']}", "Content-Type": "text/csv"},
                )
                r.raise_for_status()
                last = r.json()
                assert last["refused"] == 0, last["problems"][:3]
            acknowledged = time.monotonic() - start
            ids = [org["id"] for org in communities[: len(files)]]
            accepted = asyncio.run(pledges_visible(dsn, ids, args.volunteers, start))
            seen = last["sign_ins"][-1]
            r = http.get(
                f"/v1/volunteers/{seen['id']}",
                headers={"Authorization": f"Bearer {seen['token']}"},
            )
            assert r.status_code == 200, r.text
            rerun = time.monotonic()
            r = http.post(
                "/v1/imports/volunteers",
                content=files[-1],
                headers={
                    "Authorization": f"Bearer {communities[len(files) - 1]['token']}",
                    "Content-Type": "text/csv",
                },
            )
            assert (
                r.json()["created"] == 0
                and r.json()["unchanged"] == len(files[-1].splitlines()) - 1
            )
            rerun_seconds = time.monotonic() - rerun
            cli = cli_import(ex, dsn, communities[len(files)], args.cli_volunteers, rng, tmp)
        finally:
            ex.stop()
    rate = args.volunteers / acknowledged
    out = io.StringIO()
    print(
        f"baseline (one by one, {args.connections} connections): {raw['volunteers']} volunteers"
        f" in {raw['seconds']:.1f} s = {raw['rate']:.0f} volunteers/s"
        f" ({raw['postings_rate']:.0f} postings/s)",
        file=out,
    )
    print(
        f"organisations: {args.orgs} imported in {orgs_seconds:.1f} s"
        f" = {args.orgs / orgs_seconds:.0f}/s",
        file=out,
    )
    print(
        f"volunteers: {args.volunteers} imported (acknowledged, durable) in {acknowledged:.1f} s"
        f" = {rate:.0f} volunteers/s, {rate / raw['rate']:.1f}x the baseline",
        file=out,
    )
    print(
        f"volunteers: all pledges accepted by intake and visible in the read API after"
        f" {accepted:.1f} s",
        file=out,
    )
    print(
        f"rerun of one file ({len(files[-1].splitlines()) - 1} rows, nothing to write):"
        f" {rerun_seconds:.2f} s",
        file=out,
    )
    print(
        f"command line: {args.cli_volunteers} volunteers written in {cli['written']:.1f} s"
        f" (`exchange import volunteers`, another process), all visible in the read API"
        f" after {cli['visible']:.1f} s (published by the gateway relay's sweep)",
        file=out,
    )
    total = orgs_seconds + acknowledged
    print(
        f"whole import (organisations + volunteers, acknowledged): {total:.1f} s"
        f" (goal < 60 s: {'met' if total < 60 else 'NOT met'})",
        file=out,
    )
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()
