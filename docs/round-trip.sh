#!/usr/bin/env bash
# A foundation, a community and a volunteer do the whole round trip against a running exchange
# (`make run` in another terminal). Every line is plain curl; python3 only picks fields out of
# the JSON answers. Run from the repository root: bash docs/round-trip.sh
set -euo pipefail
API=${EXCHANGE_URL:-http://127.0.0.1:8000}
EXCHANGE=${EXCHANGE:-.venv/bin/exchange}
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
post() { curl -sf -X "$1" "$API$2" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' -d "$4"; }
get() { curl -sf "$API$1" -H "Authorization: Bearer $2"; }
wait_decided() {  # a posting is decided (or refused) asynchronously; wait for it
  for _ in $(seq 100); do
    s=$(get "/v1/postings/$1" "$2")
    case $(echo "$s" | field "['status']") in decided) echo "$s" | field "['decided_seq']"; return;;
      refused) echo "refused: $s" >&2; exit 1;; esac
    sleep 0.2
  done; echo "not decided: $1" >&2; exit 1
}
token() { "$EXCHANGE" orgs create "$@" | tail -1 | sed 's/.*: //'; }

# 1. The operator registers a foundation and a community (tokens are shown once).
FOUNDATION=$(token --kind foundation --name 中央门街道慈善基金会 --district 鼓楼区 --street 中央门街道)
COMMUNITY=$(token --kind community --name 工人新村社区 --district 鼓楼区 --street 中央门街道)
SAT=$(python3 -c "import datetime as d; t=d.date.today(); print(t+d.timedelta(days=7-t.weekday()+5))")

# 2. The foundation opens a fund earmarked for elderly meals in 鼓楼区 and receives a donation.
#    It expires after the weekend, so the matcher spends it before money that lasts longer.
FUND=$(post POST /v1/funds "$FOUNDATION" "{\"name\": \"中央门银发助餐基金\", \"foundation\": \"中央门街道慈善基金会\",
  \"categories\": [\"elderly_meals\"], \"districts\": [\"鼓楼区\"], \"valid_until\": \"${SAT}T23:59:00+08:00\"}" | field "['fund_id']")
GIFT=$(post POST "/v1/funds/$FUND/donations" "$FOUNDATION" \
  '{"donor": "工人新村居民", "amount": {"amount_minor": 200000, "currency": "CNY"}}' | field "['posting_id']")
wait_decided "$GIFT" "$FOUNDATION" >/dev/null

# 3. The community registers a volunteer, who pledges with their own token.
REG=$(post POST /v1/volunteers "$COMMUNITY" '{"pseudonym": "赵大姐", "home": {"district": "鼓楼区", "street": "中央门街道"}}')
VOLUNTEER=$(echo "$REG" | field "['volunteer_id']"); VTOKEN=$(echo "$REG" | field "['volunteer_token']")
PLEDGE=$(post PUT "/v1/volunteers/$VOLUNTEER/pledge" "$VTOKEN" "{\"pseudonym\": \"赵大姐\",
  \"home\": {\"district\": \"鼓楼区\", \"street\": \"中央门街道\"}, \"skills\": [\"meal_delivery\", \"cooking\"],
  \"availability\": [{\"start\": \"${SAT}T14:30:00+08:00\", \"end\": \"${SAT}T18:00:00+08:00\"}]}" | field "['posting_id']")
wait_decided "$PLEDGE" "$VTOKEN" >/dev/null

# 4. The community posts a Saturday supper-delivery shift and a meal subsidy.
SHIFT_NEED=$(post POST /v1/needs "$COMMUNITY" "{\"title\": \"银发助餐：周六晚餐送餐\", \"kind\": \"volunteer_hours\",
  \"category\": \"elderly_meals\", \"place\": {\"district\": \"鼓楼区\", \"street\": \"中央门街道\"},
  \"deadline\": \"${SAT}T17:00:00+08:00\", \"volunteers_needed\": 1, \"required_skills\": [\"meal_delivery\"],
  \"shift\": {\"start\": \"${SAT}T15:00:00+08:00\", \"end\": \"${SAT}T17:00:00+08:00\"}}" | field "['need_id']")
MONEY_NEED=$(post POST /v1/needs "$COMMUNITY" "{\"title\": \"助餐点餐费补贴\", \"kind\": \"money\",
  \"category\": \"elderly_meals\", \"place\": {\"district\": \"鼓楼区\"}, \"deadline\": \"${SAT}T20:00:00+08:00\",
  \"amount\": {\"amount_minor\": 50000, \"currency\": \"CNY\"}}" | field "['need_id']")

# 5. The matcher proposes the volunteer and the fund; the volunteer accepts the shift.
for _ in $(seq 100); do
  SHIFT_MATCH=$(get "/v1/needs/$SHIFT_NEED" "$COMMUNITY" 2>/dev/null | field "['matches'][0]['match_id']" 2>/dev/null) && break
  sleep 0.2; done
for _ in $(seq 100); do
  MONEY_MATCH=$(get "/v1/needs/$MONEY_NEED" "$COMMUNITY" 2>/dev/null | field "['matches'][0]['match_id']" 2>/dev/null) && break
  sleep 0.2; done
wait_decided "$(post POST "/v1/matches/$SHIFT_MATCH/accept" "$VTOKEN" '{}' | field "['posting_id']")" "$VTOKEN" >/dev/null

# 6. The community confirms two hours served and the money received.
post POST "/v1/matches/$SHIFT_MATCH/confirm" "$COMMUNITY" '{"minutes_served": 120}' >/dev/null
DONE=$(post POST "/v1/matches/$MONEY_MATCH/confirm" "$COMMUNITY" \
  '{"amount_received": {"amount_minor": 50000, "currency": "CNY"}}' | field "['posting_id']")
SEQ=$(wait_decided "$DONE" "$COMMUNITY")

# 7. Everybody sees the result: the need fulfilled, the fund's money disbursed.
get "/v1/needs/$SHIFT_NEED?min_seq=$SEQ" "$COMMUNITY" | field "['title'], d['status']"
get "/v1/funds/$FUND?min_seq=$SEQ" "$FOUNDATION" | field "['balance']"
