#!lua
-- Layout 4: in each de-duplication set given in KEYS, the members that are messageIds (written
-- by an older version: they do not start with the byte 0xff, which UTF-8 never holds) become
-- their digests (store/codecs.py seen_member: 0xff, then the first 11 bytes of the SHA-1 of
-- the messageId), each keeping its receipt time (the later one when the digest is there
-- already). Members that are digests stay: converting twice changes nothing. Returns how
-- many sets changed.
local MARK = '\255'

local function digest(message_id)
  local hex = string.sub(redis.sha1hex(message_id), 1, 22)
  return MARK .. string.gsub(hex, '..', function(pair) return string.char(tonumber(pair, 16)) end)
end

local changed = 0
for _, key in ipairs(KEYS) do
  local members = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local old, new = {}, {}
  for j = 1, #members, 2 do
    local member = members[j]
    if string.sub(member, 1, 1) ~= MARK then
      old[#old + 1] = member
      new[#new + 1] = members[j + 1]
      new[#new + 1] = digest(member)
    end
  end
  if #old > 0 then
    for start = 1, #old, 500 do
      redis.call('ZREM', key, unpack(old, start, math.min(start + 499, #old)))
    end
    for start = 1, #new, 1000 do
      redis.call('ZADD', key, 'GT', unpack(new, start, math.min(start + 999, #new)))
    end
    changed = changed + 1
  end
end
return changed
