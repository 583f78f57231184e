package statsmodel

import (
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/escqrs/platform/internal/readmodel/statskeys"
)

// The scripts build keys from the namespace they resolve and the key
// prefixes of statskeys (substituted below), so the layout has one
// definition. Keys are therefore not all declared in KEYS: this works on a
// standalone Redis (or a primary with replicas), not on Redis Cluster, where
// a checkpoint shared by every event could not be updated atomically with
// them anyway.
//
// Numbers that can grow large (cents, positions) travel as strings and are
// handed back to Redis as received: Lua numbers are doubles.

// resolveNS is shared by every script. KEYS[1] is the active-namespace key;
// ARGV[1] is the namespace to use when ARGV[2] is "1" (fixed), else the
// default for an absent or empty active key.
const resolveNS = `
local function namespace()
  if ARGV[2] == '1' then return ARGV[1] end
  local ns = redis.call('GET', KEYS[1])
  if not ns or ns == '' then return ARGV[1] end
  return ns
end
`

// versionsSrc returns, for each stream id in ARGV[3..], its applied
// version as a string ("0" when unknown): the order hash's version field or
// the account stream's version key.
const versionsSrc = resolveNS + `
local ns = namespace()
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HGET', ns .. '@ORDER@' .. id, 'version')
  if not v then v = redis.call('GET', ns .. '@VERSION@' .. id) end
  out[#out + 1] = v or '0'
end
return out
`

// checkpointSrc returns the resolved namespace and the checkpoint's
// position, events_applied and updated_at (false where absent).
const checkpointSrc = resolveNS + `
local ns = namespace()
local cp = redis.call('HMGET', ns .. '@CHECKPOINT@', 'position', 'events_applied', 'updated_at')
return {ns, cp[1], cp[2], cp[3]}
`

// applySrc applies one event if the stream's stored version is exactly its
// version - 1, and returns 1; otherwise it changes nothing and returns 0.
//
// ARGV: 1-2 namespace (see resolveNS), 3 stream id, 4 version, 5 position,
// 6 checkpoint time, 7 stream ("order" or "account"), 8 operation, 9.. its
// arguments:
//
//	order   place  customer_id total_cents recorded_at
//	order   pay    amount_cents
//	order   ship | cancel | noop
//	account open   recorded_at initial_balance_cents currency owner
//	account delta  recorded_at signed_amount_cents
//	account close | noop  recorded_at
const applySrc = resolveNS + `
local ns = namespace()
local id, v, op = ARGV[3], tonumber(ARGV[4]), ARGV[8]

local function negate(s)
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

if ARGV[7] == 'order' then
  local ok = ns .. '@ORDER@' .. id
  local cur = tonumber(redis.call('HGET', ok, 'version') or '0')
  if cur ~= v - 1 then return 0 end
  if op == 'place' then
    local cust, at = ARGV[9], ARGV[11]
    redis.call('HSET', ok, 'customer_id', cust, 'total_cents', ARGV[10], 'paid_cents', '0', 'status', 'placed', 'version', ARGV[4])
    local ck = ns .. '@CUSTOMER@' .. cust
    if redis.call('HINCRBY', ck, 'orders_placed', 1) == 1 then
      -- A new customer: write every field once, so readers never see a partial hash.
      redis.call('HSET', ck, 'orders_paid', '0', 'orders_cancelled', '0', 'total_spent_cents', '0', 'last_order_at', at)
    else
      local last = redis.call('HGET', ck, 'last_order_at')
      if not last or at > last then redis.call('HSET', ck, 'last_order_at', at) end
    end
  else
    local cust = redis.call('HGET', ok, 'customer_id')
    if not cust then
      return redis.error_reply('order ' .. id .. ' has no OrderPlaced before version ' .. ARGV[4])
    end
    local ck = ns .. '@CUSTOMER@' .. cust
    if op == 'pay' then
      redis.call('HSET', ok, 'status', 'paid', 'paid_cents', ARGV[9], 'version', ARGV[4])
      redis.call('HINCRBY', ck, 'orders_paid', 1)
      local spent = redis.call('HINCRBY', ck, 'total_spent_cents', ARGV[9])
      redis.call('ZADD', ns .. '@TOP@', spent, cust)
    elseif op == 'cancel' then
      local status = redis.call('HGET', ok, 'status')
      local paid = redis.call('HGET', ok, 'paid_cents') or '0'
      redis.call('HSET', ok, 'status', 'cancelled', 'version', ARGV[4])
      redis.call('HINCRBY', ck, 'orders_cancelled', 1)
      if status == 'paid' and paid ~= '0' then
        -- The refund of a paid order.
        local spent = redis.call('HINCRBY', ck, 'total_spent_cents', negate(paid))
        redis.call('ZADD', ns .. '@TOP@', spent, cust)
      end
    elseif op == 'ship' then
      redis.call('HSET', ok, 'status', 'shipped', 'version', ARGV[4])
    else
      redis.call('HSET', ok, 'version', ARGV[4])
    end
  end
elseif ARGV[7] == 'account' then
  local vk = ns .. '@VERSION@' .. id
  local cur = tonumber(redis.call('GET', vk) or '0')
  if cur ~= v - 1 then return 0 end
  local bk = ns .. '@BALANCE@' .. id
  if op == 'open' then
    redis.call('HSET', bk, 'balance_cents', ARGV[10], 'currency', ARGV[11], 'owner', ARGV[12], 'status', 'open')
  elseif op == 'delta' then
    redis.call('HINCRBY', bk, 'balance_cents', ARGV[10])
  elseif op == 'close' then
    redis.call('HSET', bk, 'status', 'closed')
  end
  redis.call('HSET', bk, 'version', ARGV[4], 'updated_at', ARGV[9])
  redis.call('SET', vk, ARGV[4])
else
  return redis.error_reply('unknown stream kind ' .. tostring(ARGV[7]))
end

local cpk = ns .. '@CHECKPOINT@'
if tonumber(ARGV[5]) > tonumber(redis.call('HGET', cpk, 'position') or '0') then
  redis.call('HSET', cpk, 'position', ARGV[5], 'updated_at', ARGV[6])
else
  redis.call('HSET', cpk, 'updated_at', ARGV[6])
end
redis.call('HINCRBY', cpk, 'events_applied', 1)
return 1
`

// layout substitutes the statskeys prefixes: a Keys with an empty
// namespace, given an empty id, yields the part between namespace and id.
var layout = func() *strings.Replacer {
	k := statskeys.Keys{}
	return strings.NewReplacer(
		"@ORDER@", k.Order(""),
		"@VERSION@", k.StreamVersion(""),
		"@CUSTOMER@", k.CustomerStats(""),
		"@BALANCE@", k.AccountBalance(""),
		"@TOP@", k.TopCustomers(),
		"@CHECKPOINT@", k.Checkpoint(),
	)
}()

// scripts are the model's Lua scripts. salt, a Lua comment, gives tests
// scripts that Redis has not cached yet.
type scripts struct{ versions, apply, checkpoint *redis.Script }

func newScripts(salt string) scripts {
	build := func(src string) *redis.Script { return redis.NewScript(salt + layout.Replace(src)) }
	return scripts{versions: build(versionsSrc), apply: build(applySrc), checkpoint: build(checkpointSrc)}
}
