// Lua scripts of the Redis store. Every script receives the same twelve keys
// (all under one hash tag, so they run on Redis Cluster too) and works out
// lease deadlines with Redis's own clock (TIME), so replicas' clocks never
// decide an expiry. docs/redis.md describes the key layout.

/** RedisKeys are the keys of one registry in Redis, all in the hash tag `{maxine:<registry>}`. */
export interface RedisKeys {
  /** id holds the registryId; it vanishes when Redis loses its data, and a new one names the new state. */
  readonly id: string;
  readonly rev: string;
  /** inst is a hash: "namespace/service/instanceId" -> record JSON. */
  readonly inst: string;
  /** leases is a sorted set: instance key -> lease deadline (ms, Redis clock). */
  readonly leases: string;
  /** owner is a hash: instance key -> "<replica>:<stream>" holding it, "~<...>" once released into grace. */
  readonly owner: string;
  /** held is a hash: instance key -> how long (ms, Redis clock) the holder's own renewals keep its binding fresh. */
  readonly held: string;
  /** next is a hash: instance key -> "<fresh until ms> <replica>:<stream>" of one other stream that beats it (takes it when the holder ends). */
  readonly next: string;
  /** ttl is a hash: instance key -> the lease TTL (ms) of its last Register, which every replica renews it for. */
  readonly ttl: string;
  /** log is the change stream; entry id "<revision>-0". */
  readonly log: string;
  readonly lock: string;
  readonly fence: string;
  readonly hold: string;
}

/** redisKeys names the keys of registry (the MAXINE_REDIS_REGISTRY setting). */
export function redisKeys(registry: string): RedisKeys {
  const p = `{maxine:${registry}}:`;
  return {
    id: `${p}id`,
    rev: `${p}rev`,
    inst: `${p}inst`,
    leases: `${p}leases`,
    owner: `${p}owner`,
    held: `${p}held`,
    next: `${p}next`,
    ttl: `${p}ttl`,
    log: `${p}log`,
    lock: `${p}sweeper`,
    fence: `${p}fence`,
    hold: `${p}hold`,
  };
}

/** keyList is the KEYS array every script takes, in this order. */
export function keyList(k: RedisKeys): string[] {
  return [k.id, k.rev, k.inst, k.leases, k.owner, k.log, k.lock, k.fence, k.hold, k.held, k.next, k.ttl];
}

const PRELUDE = `
local K_ID, K_REV, K_INST, K_LEASES, K_OWNER, K_LOG, K_LOCK, K_FENCE, K_HOLD, K_HELD, K_NEXT, K_TTL = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- late refuses a write that reaches Redis after the deadline its replica
-- gave it (ms, Redis clock; '' for none): the replica has already told its
-- caller UNAVAILABLE, so applying it now, as a frozen Redis that resumes
-- would, must not happen.
local function late(deadline)
  if deadline ~= nil and deadline ~= '' and now_ms() > tonumber(deadline) then
    return redis.error_reply('MAXINE_LATE the write reached Redis after its deadline and was not applied')
  end
  return nil
end
-- changed refuses a write made for another registry. expected is the
-- registryId, or "registryId@revision" with the newest revision the writing
-- replica has seen: Redis behind it lost acknowledged writes (a failover to a
-- replica that lagged), and writing on would give new changes revisions that
-- watchers already had for others.
local function changed(expected)
  local want, seen = string.match(expected, '^(.*)@(%d+)$')
  if want == nil then want = expected end
  local id = redis.call('GET', K_ID)
  if id ~= want then return redis.error_reply('MAXINE_REGISTRY_CHANGED registry is now ' .. tostring(id)) end
  if seen ~= nil then
    local rev = tonumber(redis.call('GET', K_REV) or '0')
    if rev < tonumber(seen) then
      return redis.error_reply('MAXINE_ROLLED_BACK Redis is at revision ' .. rev .. ' but revision ' .. seen .. ' was acknowledged')
    end
  end
  return nil
end
local function append(rev, maxlen, fields)
  redis.call('XADD', K_LOG, 'MAXLEN', '~', maxlen, rev .. '-0', unpack(fields))
end
local HEAD = '^{"createRevision":(%d+),"registeredAt":(%d+),"updatedAt":%d+,"modRevision":(%d+),"spec":(.*)}$'
-- owned refuses a change by owner (JSON-escaped; "" for no check) to a record another principal owns
local function owned(rec, owner)
  if owner == nil or owner == '' then return nil end
  local cur = string.match(rec, '"spec":{"owner":"(.-)","namespace":') or 'anonymous'
  if cur ~= owner then return redis.error_reply('MAXINE_NOT_OWNER ' .. cur) end
  return nil
end
-- The heartbeat binding (docs/redis.md, "Heartbeat binding"): K_OWNER names
-- the stream that holds a key, K_HELD until when (ms) that holder's own
-- renewals keep the binding fresh, K_NEXT one other stream that beats the
-- key, "<fresh until> <owner>". The stream that holds a key keeps it; any
-- other stream's renewal only extends the deadline and records it in
-- K_NEXT, unless the binding is free: empty, released into grace (~...),
-- stale (its holder stopped renewing: a dead or cut-off replica), or held
-- by another stream of the same replica (whose own lease table chose it).
local function replica_of(owner) return string.match(owner, '^~?(.*):[^:]*$') end
local function parse_next(v)
  if not v then return nil, nil end
  local upto, who = string.match(v, '^(%d+) (.*)$')
  return tonumber(upto), who
end
local function bind(key, owner, upto, now)
  local cur = redis.call('HGET', K_OWNER, key)
  if cur ~= owner then
    local free = (not cur) or string.sub(cur, 1, 1) == '~' or replica_of(cur) == replica_of(owner)
    if not free then
      local held = redis.call('HGET', K_HELD, key)
      free = (not held) or tonumber(held) < now
    end
    local nu, nw = parse_next(redis.call('HGET', K_NEXT, key))
    if not free then
      -- the first other stream keeps the K_NEXT slot while it renews
      if nw == nil or nw == owner or nu < now then redis.call('HSET', K_NEXT, key, upto .. ' ' .. owner) end
      return false
    end
    redis.call('HSET', K_OWNER, key, owner)
    if nw == owner then redis.call('HDEL', K_NEXT, key) end
  end
  redis.call('HSET', K_HELD, key, upto)
  return true
end
-- unbind forgets key's binding and registered TTL (its instance is gone)
local function unbind(key)
  redis.call('HDEL', K_OWNER, key)
  redis.call('HDEL', K_HELD, key)
  redis.call('HDEL', K_NEXT, key)
  redis.call('HDEL', K_TTL, key)
end
`;

/**
 * PUT adds or replaces an instance. ARGV: expected registryId, key, spec
 * JSON, now (ms, for registeredAt/updatedAt), lease TTL ms ("" keeps the
 * lease; then an absent instance is not created; "0" makes the instance
 * persistent: created if absent, and any lease it had, with its TTL,
 * removed (an instance with an active check); "P" creates it persistent
 * only if absent and otherwise changes nothing (re-asserting check-only
 * instances into a Redis that lost its data); else it is also stored
 * as the TTL every replica renews the lease for), the stream that binds it
 * ("<replica>:<stream>", taken under the heartbeat-binding rule; "" keeps
 * the binding), log MAXLEN, deadline (ms, Redis clock; "" for none), the
 * principal that must own an existing record (JSON-escaped; "" for no
 * check), "1" to keep the stored record's operatorStatus (the spec then has
 * none; "" writes the spec's as it is), binding slack ms (with a stream:
 * how long past its TTL a holder's renewal keeps the binding fresh).
 * Returns {0}
 * (unchanged), {-1} (absent) or {revision, fields}.
 */
export const PUT = `${PRELUDE}
local err = changed(ARGV[1]) or late(ARGV[8]); if err then return err end
local key, spec, now, ttl, owner = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local prev = redis.call('HGET', K_INST, key)
if ttl == 'P' then
  if prev then return {0} end
  ttl = '0'
end
if prev then
  local e = owned(prev, ARGV[9]); if e then return e end
  if ARGV[10] == '1' then
    local op = string.match(prev, ',"operatorStatus":"(%u+)"}}$')
    if op then spec = string.sub(spec, 1, -2) .. ',"operatorStatus":"' .. op .. '"}' end
  end
end
local function lease()
  if ttl == '' then return end
  if ttl == '0' then
    redis.call('ZREM', K_LEASES, key)
    redis.call('HDEL', K_TTL, key)
    return
  end
  redis.call('HSET', K_TTL, key, ttl)
  local t = now_ms()
  local d = t + tonumber(ttl)
  if owner == '' or bind(key, owner, d + tonumber(ARGV[11]), t) then
    redis.call('ZADD', K_LEASES, d, key)
  else
    redis.call('ZADD', K_LEASES, 'GT', d, key)
  end
end
local created, registered
if prev then
  local c, r, m, s = string.match(prev, HEAD)
  if s == spec then lease(); return {0} end
  created, registered = c, r
elseif ttl == '' then
  return {-1}
end
local rev = redis.call('INCR', K_REV)
if not prev then created, registered = rev, now end
local rec = '{"createRevision":' .. created .. ',"registeredAt":' .. registered .. ',"updatedAt":' .. now .. ',"modRevision":' .. rev .. ',"spec":' .. spec .. '}'
redis.call('HSET', K_INST, key, rec)
lease()
local fields
if prev then fields = {'t', 'U', 'k', key, 'v', rec, 'p', prev} else fields = {'t', 'A', 'k', key, 'v', rec} end
append(rev, ARGV[7], fields)
return {rev, fields}
`;

/**
 * REMOVE deletes an instance and its lease. ARGV: expected registryId, key,
 * reason, ifModRevision ("" for any), log MAXLEN, deadline (ms, Redis clock;
 * "" for none), the principal that must own it (JSON-escaped; "" for no
 * check). Returns {0} or {revision, fields}.
 */
export const REMOVE = `${PRELUDE}
local err = changed(ARGV[1]) or late(ARGV[6]); if err then return err end
local key = ARGV[2]
local prev = redis.call('HGET', K_INST, key)
if not prev then return {0} end
local e = owned(prev, ARGV[7]); if e then return e end
if ARGV[4] ~= '' then
  local c, r, m = string.match(prev, HEAD)
  if m ~= ARGV[4] then return {0} end
end
local rev = redis.call('INCR', K_REV)
redis.call('HDEL', K_INST, key)
redis.call('ZREM', K_LEASES, key)
unbind(key)
local fields = {'t', 'R', 'k', key, 'v', prev, 'why', ARGV[3]}
append(rev, ARGV[5], fields)
return {rev, fields}
`;

/**
 * RENEW extends leases in one batch, each for the stream that beat it on
 * this replica. A stream that holds the key's binding (or takes it, see
 * bind) sets the deadline; any other only extends it (GT) and is recorded
 * as the key's next holder. ARGV: expected registryId, replica id, binding
 * slack ms, then triples (key, TTL ms, stream id). Returns the keys that
 * are not registered.
 */
export const RENEW = `${PRELUDE}
local err = changed(ARGV[1]); if err then return err end
local now = now_ms()
local replica, slack = ARGV[2], tonumber(ARGV[3])
local unknown = {}
for i = 4, #ARGV, 3 do
  local key = ARGV[i]
  local d = now + tonumber(ARGV[i + 1])
  -- Every instance has a lease member: an absent one is not registered.
  if redis.call('ZSCORE', K_LEASES, key) == false then
    unknown[#unknown + 1] = key
  elseif bind(key, replica .. ':' .. ARGV[i + 2], d + slack, now) then
    redis.call('ZADD', K_LEASES, 'XX', d, key)
  else
    redis.call('ZADD', K_LEASES, 'XX', 'GT', d, key)
  end
end
return unknown
`;

/**
 * RELEASE ends a stream's part in the bindings of keys. Where the stream
 * holds the binding, or the binding is free as RENEW would have taken it
 * (no holder, another stream of the same replica, or a stale holder: the
 * stream's last renewal may not have been written when it ended, a
 * replica writes them every renew interval), the binding passes to the
 * key's fresh next holder (a session that moved to another replica keeps
 * its lease) or, with none, the lease ends as on one server: after the
 * grace, or when the stream's last beat's TTL runs out if that comes first
 * (by the replica's count: the deadline in Redis can be up to half a TTL
 * behind it, renewals being batched). A key already released into grace
 * keeps its grace. Where another stream holds it, fresh, the ending stream
 * only stops being its next holder: its end removes nothing. ARGV:
 * expected registryId, grace ms, owner, then pairs: key, ms left of its
 * lease by the replica's count.
 */
export const RELEASE = `${PRELUDE}
local err = changed(ARGV[1]); if err then return err end
local now = now_ms()
local graceUntil = now + tonumber(ARGV[2])
local who = ARGV[3]
for i = 4, #ARGV, 2 do
  local key = ARGV[i]
  local cur = redis.call('HGET', K_OWNER, key)
  local nu, nw = parse_next(redis.call('HGET', K_NEXT, key))
  local holds = cur == who or not cur
  if not holds and string.sub(cur, 1, 1) ~= '~' then
    holds = replica_of(cur) == replica_of(who)
    if not holds then
      local held = redis.call('HGET', K_HELD, key)
      holds = (not held) or tonumber(held) < now
    end
  end
  if nw == who then redis.call('HDEL', K_NEXT, key) end
  if holds then
    if nw ~= nil and nw ~= who and nu >= now then
      redis.call('HSET', K_OWNER, key, nw)
      redis.call('HSET', K_HELD, key, nu)
      redis.call('HDEL', K_NEXT, key)
    else
      redis.call('HDEL', K_HELD, key)
      local d = redis.call('ZSCORE', K_LEASES, key)
      if d then
        -- the later of Redis's deadline (another replica may have extended it) and the replica's own
        local due = math.max(tonumber(d), now + tonumber(ARGV[i + 1]))
        if graceUntil < due then
          redis.call('ZADD', K_LEASES, graceUntil, key)
          redis.call('HSET', K_OWNER, key, '~' .. who)
        else
          redis.call('ZADD', K_LEASES, due, key)
          redis.call('HDEL', K_OWNER, key)
        end
      else
        redis.call('HDEL', K_OWNER, key)
      end
    end
  end
end
return 0
`;

/**
 * LOCK takes or keeps the sweeper lock. A new holder gets the next fencing
 * token (INCR fence). ARGV: replica id, lock TTL ms, token held ("" none).
 * Returns the token held now, or 0 when another replica holds the lock.
 */
export const LOCK = `${PRELUDE}
local cur = redis.call('GET', K_LOCK)
if not cur then
  local token = redis.call('INCR', K_FENCE)
  redis.call('SET', K_LOCK, ARGV[1] .. ':' .. token, 'PX', ARGV[2])
  return token
end
if ARGV[3] ~= '' and cur == ARGV[1] .. ':' .. ARGV[3] then
  redis.call('PEXPIRE', K_LOCK, ARGV[2])
  return tonumber(ARGV[3])
end
return 0
`;

/** UNLOCK gives the sweeper lock up if this replica (ARGV: replica id, token) holds it. */
export const UNLOCK = `${PRELUDE}
if redis.call('GET', K_LOCK) == ARGV[1] .. ':' .. ARGV[2] then redis.call('DEL', K_LOCK) end
return 0
`;

/**
 * SWEEP removes instances whose lease deadline has passed by Redis's clock.
 * It is fenced: it does nothing unless the caller holds the lock with the
 * latest token, so a sweeper that paused past its lock can never sweep.
 * Nothing is swept while the hold key exists (right after an outage, until
 * replicas have re-asserted their leases). ARGV: expected registryId,
 * replica id, token, batch limit, log MAXLEN, least lock PTTL ms left (a
 * sweep that arrives later than that after its lock renewal is refused).
 * Returns {-1} (not the holder, or stale),
 * {-2} (held) or {revision, fields, revision, fields, ...}.
 */
export const SWEEP = `${PRELUDE}
local err = changed(ARGV[1]); if err then return err end
if redis.call('GET', K_LOCK) ~= ARGV[2] .. ':' .. ARGV[3] or redis.call('GET', K_FENCE) ~= ARGV[3] then return {-1} end
-- The lock was renewed just before this call: a lock this close to expiry
-- means the call waited (Redis paused, a network stall) and is stale.
if redis.call('PTTL', K_LOCK) < tonumber(ARGV[6]) then return {-1} end
if redis.call('EXISTS', K_HOLD) == 1 then return {-2} end
local due = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, key in ipairs(due) do
  redis.call('ZREM', K_LEASES, key)
  local prev = redis.call('HGET', K_INST, key)
  local owner = redis.call('HGET', K_OWNER, key)
  unbind(key)
  if prev then
    local reason = 'LEASE_EXPIRED'
    if owner and string.sub(owner, 1, 1) == '~' then reason = 'STREAM_CLOSED' end
    redis.call('HDEL', K_INST, key)
    local rev = redis.call('INCR', K_REV)
    local fields = {'t', 'R', 'k', key, 'v', prev, 'why', reason, 'f', ARGV[3]}
    append(rev, ARGV[5], fields)
    out[#out + 1] = rev
    out[#out + 1] = fields
  end
end
return out
`;

/**
 * INIT returns the registryId, creating it (ARGV[1]) when Redis has none,
 * and with ARGV[2] > 0 sets the hold key that pauses sweeping for that many
 * ms (after an outage). ARGV[3] is "registryId@revision" the caller's mirror
 * holds ('' for none): when Redis still names that registry but is behind
 * that revision, it lost acknowledged writes, so the registry gets the new id
 * ARGV[1] (watchers then reset rather than see revisions reused). Returns
 * {registryId, 1 if created, 2 if replaced}.
 */
export const INIT = `${PRELUDE}
local id = redis.call('GET', K_ID)
local created = 0
if not id then
  redis.call('SET', K_ID, ARGV[1])
  id = ARGV[1]
  created = 1
elseif ARGV[3] ~= nil and ARGV[3] ~= '' then
  local want, seen = string.match(ARGV[3], '^(.*)@(%d+)$')
  if want == id and tonumber(redis.call('GET', K_REV) or '0') < tonumber(seen) then
    redis.call('SET', K_ID, ARGV[1])
    id = ARGV[1]
    created = 2
  end
end
if tonumber(ARGV[2]) > 0 then redis.call('SET', K_HOLD, '1', 'PX', ARGV[2]) end
return {id, created}
`;

/**
 * LOAD reads the whole state at one revision: {registryId, revision,
 * [key, record, ...], newest ARGV[1] log entries (newest first)}.
 */
export const LOAD = `${PRELUDE}
local log = {}
if tonumber(ARGV[1]) > 0 then log = redis.call('XREVRANGE', K_LOG, '+', '-', 'COUNT', ARGV[1]) end
return {redis.call('GET', K_ID) or '', redis.call('GET', K_REV) or '0', redis.call('HGETALL', K_INST), log}
`;

/** SCRIPTS are the scripts by the command name they are defined under. */
export const SCRIPTS = {
  maxinePut: PUT,
  maxineRemove: REMOVE,
  maxineRenew: RENEW,
  maxineRelease: RELEASE,
  maxineLock: LOCK,
  maxineUnlock: UNLOCK,
  maxineSweep: SWEEP,
  maxineInit: INIT,
  maxineLoad: LOAD,
} as const;
