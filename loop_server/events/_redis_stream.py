"""The shared event stream's layout in Redis: key names, the publishing script, and reading an
entry back. No I/O here; ``_redis_relay`` does the talking.

* ``loop:events`` — a stream; entry ID ``<seq>-0``, so the ID *is* the event's ``seq`` and
  ``XREAD`` after ``<seq>-0`` is "everything after ``seq``". Fields: ``e`` epoch, ``t`` type,
  ``c`` channel id, ``g`` ``1`` for a global event, ``ts`` timestamp (ms), ``d`` the data JSON.
  Trimmed with ``MAXLEN ~ <max(history, 10000)>`` as entries are added.
* ``loop:events:seq`` — the last ``seq`` given.
* ``loop:events:epoch`` — the shared epoch (16 hex characters). Created by whoever needs it
  first (``SET NX``); a Redis that lost its data has none, and the next one created starts a new
  epoch.
* ``loop:events:batch:<relay>`` — the number of the last batch that relay published, so a batch
  retried after a lost reply is not published twice.

One Redis server, not Redis Cluster: the script touches keys that would live in different slots.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_KEY = "loop:events"
SEQ_KEY = "loop:events:seq"
EPOCH_KEY = "loop:events:epoch"
BATCH_KEY_PREFIX = "loop:events:batch:"

#: How long a relay's batch marker outlives its last batch: far longer than any retry of a
#: reply lost in flight, short enough that relays that are gone leave nothing behind.
BATCH_MARKER_TTL_S = 86_400

#: Per event, after the three leading arguments: type, channel, global, timestamp, data.
FIELDS_PER_EVENT = 5

# Atomic per batch (a script runs alone), so seq order = stream order = delivery order on every
# instance. The seq continues from the counter, or from the stream's last ID if that is higher (a
# counter lost or deleted by hand must not make XADD refuse a smaller ID and fail the batch half
# way: a script's writes are not rolled back). Returns {epoch, last seq}; last seq -1 means the
# batch had been published already (its reply was lost) and was not published again.
PUBLISH_SCRIPT = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[3], epoch)
end
local batch = tonumber(ARGV[3])
local done = tonumber(redis.call('GET', KEYS[4]) or '0')
if done >= batch then
  return {epoch, -1}
end
redis.call('SET', KEYS[4], batch, 'EX', $TTL)
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if top then
  local top_seq = tonumber(string.match(top[1], '^(%d+)'))
  if top_seq > n then n = top_seq end
end
for i = 4, #ARGV, $PER_EVENT do
  n = n + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], n .. '-0',
    'e', epoch, 't', ARGV[i], 'c', ARGV[i + 1], 'g', ARGV[i + 2], 'ts', ARGV[i + 3],
    'd', ARGV[i + 4])
end
redis.call('SET', KEYS[2], n)
return {epoch, n}
""".replace("$TTL", str(BATCH_MARKER_TTL_S)).replace("$PER_EVENT", str(FIELDS_PER_EVENT))


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One entry of the stream, as the hub delivers it."""

    seq: int
    epoch: str
    type: str
    channel_id: str
    is_global: bool
    timestamp_ms: int
    data_json: bytes


class MalformedEntry(ValueError):
    """An entry this server did not write (or a newer one wrote differently): skipped."""


def parse_entry_id(entry_id: bytes) -> int:
    """The ``seq`` in an entry ID ``<seq>-0``."""
    head, sep, tail = entry_id.partition(b"-")
    if not sep or tail != b"0" or not head.isdigit():
        raise MalformedEntry(f"entry id {entry_id!r} is not <seq>-0")
    return int(head)


def parse_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> StreamEvent:
    seq = parse_entry_id(entry_id)
    try:
        epoch = fields[b"e"].decode()
        event_type = fields[b"t"].decode()
        channel_id = fields[b"c"].decode()
        is_global = fields[b"g"] == b"1"
        timestamp_ms = int(fields[b"ts"])
        data_json = fields[b"d"]
    except (KeyError, UnicodeDecodeError, ValueError) as err:
        raise MalformedEntry(f"entry {entry_id!r}: {err!r}") from err
    if not epoch or not event_type:
        raise MalformedEntry(f"entry {entry_id!r}: empty epoch or type")
    # The data is spliced into every client's envelope unparsed: at least the shape the hub
    # writes (an object or null), so a hand-written scalar cannot break the envelope's form.
    if not (data_json.startswith(b"{") and data_json.endswith(b"}")) and data_json != b"null":
        raise MalformedEntry(f"entry {entry_id!r}: data is not a JSON object or null")
    return StreamEvent(seq, epoch, event_type, channel_id, is_global, timestamp_ms, data_json)
