-- Wireshark post-dissector for the Google Coral Edge TPU USB Accelerator (18d1:9302, boot loader
-- 1a6e:089a), part of usbtrace. Template: usbtrace/wireshark/generate.py fills in the protocol
-- constants and the field declarations, so no protocol number is written in this file.
--
-- Why a post-dissector: the bulk-OUT stream is a sequence of 8-byte headers each followed by
-- payload URBs, and only a reader that sees every URB of the device in frame order can tell a
-- header from a payload. Wireshark's USB dissector hands data to sub-dissectors only for URBs it
-- can attribute to an interface class (which needs the configuration descriptor in the capture)
-- and never for URBs without captured bytes; a post-dissector runs on every frame and reads the
-- usbmon fields directly. The first pass (frames in order) keeps per-frame results in `records`,
-- so later passes (clicks in the GUI, tshark -2) show the same thing.

--@@CONSTANTS@@

local edgetpu = Proto("edgetpu", "Google Coral Edge TPU")

--@@FIELDS@@

edgetpu.prefs.heuristic = Pref.bool(
  "Recognise devices without descriptors",
  true,
  "Treat a device whose descriptors are not in the capture as an Edge TPU once it accesses a " ..
  "known register or sends a valid bulk-OUT header"
)

local E = {
  unexpected = ProtoExpert.new("edgetpu.expert.unexpected",
    "Bulk OUT data where a header was expected", expert.group.MALFORMED, expert.severity.WARN),
  overrun = ProtoExpert.new("edgetpu.expert.overrun",
    "Payload runs past the length in its header", expert.group.MALFORMED, expert.severity.WARN),
  not_captured = ProtoExpert.new("edgetpu.expert.not_captured",
    "Bytes needed to decode this URB were not captured", expert.group.UNDECODED,
    expert.severity.NOTE),
  failed = ProtoExpert.new("edgetpu.expert.failed", "Request failed",
    expert.group.RESPONSE_CODE, expert.severity.WARN),
  fatal = ProtoExpert.new("edgetpu.expert.fatal", "Device reports a fatal error",
    expert.group.RESPONSE_CODE, expert.severity.ERROR),
}
edgetpu.experts = {E.unexpected, E.overrun, E.not_captured, E.failed, E.fatal}

-- Offsets in the usbmon header (the first 48 bytes are the same in both layouts) and the URB and
-- transfer types come from usbtrace.formats.usbmon, with the constants above.

local devices, records, pending, analysed

local function reset()
  devices = {} -- "bus.address" -> state of that device
  records = {} -- frame number -> what the frame carries (nil: nothing of ours)
  pending = {} -- "bus:urb id" -> record of the submit waiting for its completion
  analysed = {} -- frame number -> true once the first pass has seen it
end
reset()

function edgetpu.init()
  reset()
end

local function is_edgetpu(vid, pid)
  for _, ids in ipairs(EDGETPU_IDS) do
    if ids[1] == vid and ids[2] == pid then
      return true
    end
  end
  return false
end

local function hex64(v)
  return "0x" .. (v:tohex():gsub("^0+(.)", "%1"))
end

local function register_name(address)
  local reg = REGISTERS[address]
  if reg then
    return reg.name
  end
  return string.format("csr_%#07x", address)
end

-- Unsigned little-endian integer from bytes i..i+n-1 (1-based) of a Lua string.
local function le_bytes(raw, i, n)
  local v = 0
  for k = i + n - 1, i, -1 do
    v = v * 256 + raw:byte(k)
  end
  return v
end

local function be_bytes(raw, i, n)
  local v = 0
  for k = i, i + n - 1 do
    v = v * 256 + raw:byte(k)
  end
  return v
end

-- The usbmon header of this frame. Wireshark hands the header over in the byte order of the
-- machine that captured it only when that matches the reader's; the microseconds field (always
-- below one million) tells which order this one is in. The header is read once as a Lua string:
-- a TvbRange per field costs more than the rest of the dissector.
local function usbmon(tvb)
  local header_len = USBMON_SETUP_OFFSET + 8
  if tvb:len() < header_len then
    return nil
  end
  local raw = tvb:raw(0, header_len)
  local rd = le_bytes
  if le_bytes(raw, USBMON_TS_USEC_OFFSET + 1, 4) >= 1000000 then
    rd = be_bytes
  end
  local data_len = rd(raw, USBMON_DATA_LEN_OFFSET + 1, 4)
  -- a post-dissector sees frames of every link type: take only what is a usbmon record (a
  -- usbmon header of either size, then data_len bytes, a known URB and transfer type, and
  -- microseconds below a million in one of the two byte orders)
  local header = tvb:reported_len() - data_len
  local urb_type = raw:byte(USBMON_TYPE_OFFSET + 1)
  local xfer = raw:byte(USBMON_XFER_OFFSET + 1)
  if (header ~= USBMON_HEADER_LEN and header ~= USBMON_MMAPPED_HEADER_LEN)
      or (urb_type ~= URB_SUBMIT and urb_type ~= URB_COMPLETE and urb_type ~= URB_ERROR)
      or xfer < XFER_ISO or xfer > XFER_BULK
      or rd(raw, USBMON_TS_USEC_OFFSET + 1, 4) >= 1000000 then
    return nil
  end
  local status = rd(raw, USBMON_STATUS_OFFSET + 1, 4)
  if status >= 2147483648 then
    status = status - 4294967296
  end
  local u = {
    bus = rd(raw, USBMON_BUSNUM_OFFSET + 1, 2),
    dev = raw:byte(USBMON_DEVNUM_OFFSET + 1),
    ep = raw:byte(USBMON_EPNUM_OFFSET + 1),
    xfer = xfer,
    urb_type = urb_type,
    status = status,
    urb_len = rd(raw, USBMON_URB_LEN_OFFSET + 1, 4),
    -- the payload is the last data_len bytes of the original record, whatever the header size
    payload_off = header,
  }
  u.captured = math.max(0, tvb:len() - u.payload_off)
  u.key = u.bus .. ":" .. raw:sub(USBMON_URB_ID_OFFSET + 1, USBMON_URB_ID_OFFSET + 8)
  if u.xfer == XFER_CONTROL and u.urb_type == URB_SUBMIT
      and raw:byte(USBMON_FLAG_SETUP_OFFSET + 1) == 0 then
    local s = USBMON_SETUP_OFFSET + 1
    u.setup = {
      request_type = raw:byte(s),
      request = raw:byte(s + 1),
      value = le_bytes(raw, s + 2, 2),
      index = le_bytes(raw, s + 4, 2),
      length = le_bytes(raw, s + 6, 2),
    }
  end
  return u
end

-- Vendor and product ID from a device descriptor reply, if this frame is one.
local function device_ids(u, tvb, submit)
  if submit == nil or submit.kind ~= "get_device_descriptor" or u.status ~= 0
      or u.captured < DEVICE_DESCRIPTOR_PID_OFFSET + 2 then
    return nil
  end
  local p = u.payload_off
  return tvb(p + DEVICE_DESCRIPTOR_VID_OFFSET, 2):le_uint(),
      tvb(p + DEVICE_DESCRIPTOR_PID_OFFSET, 2):le_uint()
end

local function device(u)
  local key = u.bus .. "." .. u.dev
  local d = devices[key]
  if not d then
    d = {key = key, known = nil, open = nil, transfers = 0, streamed = {}, multi_ep = false,
      output_chunk = 0, output_offset = 0}
    devices[key] = d
  end
  return d
end

local function new_record(kind, d, u, pinfo)
  return {kind = kind, device = d.key, frame = pinfo.number, payload_off = u.payload_off,
    captured = u.captured, urb_len = u.urb_len, experts = {}}
end

-- Payload byte i (0-based) of this URB, or nil when it was not captured.
local function has_bytes(u, n)
  return u.captured >= n
end

local function header_is_valid(tvb, u)
  if u.urb_len ~= HEADER_LEN or not has_bytes(u, HEADER_LEN) then
    return false
  end
  local tag_byte = tvb(u.payload_off + HEADER_TAG_OFFSET, 1):uint()
  if bit32.band(tag_byte, bit32.bnot(TAG_MASK)) ~= 0 then
    return false
  end
  for i = HEADER_TAG_OFFSET + 1, HEADER_LEN - 1 do
    if tvb(u.payload_off + i, 1):uint() ~= 0 then
      return false
    end
  end
  return OUT_TAGS[tag_byte] == true
end

local function bulk_out_submit(d, u, tvb, pinfo)
  local stream_tag = MULTI_EP_TAG[u.ep]
  if stream_tag == nil then
    return nil
  end
  if d.known == nil then
    if u.ep == EP_BULK_OUT and header_is_valid(tvb, u) and edgetpu.prefs.heuristic then
      d.known = true
    else
      return nil
    end
  end
  if d.multi_ep or u.ep ~= EP_BULK_OUT then
    -- multi-EP mode: no headers, the endpoint says what the bytes are
    local rec = new_record("payload", d, u, pinfo)
    rec.tag = stream_tag
    rec.offset = d.streamed[u.ep] or 0
    rec.chunk_length = u.urb_len
    d.streamed[u.ep] = rec.offset + u.urb_len
    return rec
  end
  local t = d.open
  if t == nil then
    if header_is_valid(tvb, u) then
      d.transfers = d.transfers + 1
      local rec = new_record("header", d, u, pinfo)
      rec.tag = tvb(u.payload_off + HEADER_TAG_OFFSET, 1):uint()
      rec.length = tvb(u.payload_off + HEADER_LENGTH_OFFSET, 4):le_uint()
      rec.transfer = d.transfers
      rec.chunk_length = u.urb_len
      rec.remaining = rec.length
      rec.payload_in = {}
      if rec.length > 0 then
        d.open = {header = rec, received = 0}
      end
      return rec
    end
    local rec = new_record("unexpected", d, u, pinfo)
    rec.chunk_length = u.urb_len
    rec.experts[#rec.experts + 1] = has_bytes(u, math.min(u.urb_len, HEADER_LEN))
        and E.unexpected or E.not_captured
    return rec
  end
  local h = t.header
  local rec = new_record("payload", d, u, pinfo)
  rec.tag = h.tag
  rec.length = h.length
  rec.transfer = h.transfer
  rec.header_in = h.frame
  rec.offset = t.received
  rec.chunk_length = u.urb_len
  t.received = t.received + u.urb_len
  rec.remaining = math.max(0, h.length - t.received)
  h.payload_in[#h.payload_in + 1] = pinfo.number
  if t.received >= h.length then
    d.open = nil
    if t.received > h.length then
      rec.experts[#rec.experts + 1] = E.overrun
    end
  end
  return rec
end

local function bulk_out_complete(d, u, pinfo, submit)
  if submit == nil or u.status ~= 0 then
    return nil
  end
  local rec = new_record("accepted", d, u, pinfo)
  for _, k in ipairs({"tag", "length", "transfer", "offset", "chunk_length", "header_in"}) do
    rec[k] = submit[k]
  end
  rec.accepted_kind = submit.kind
  rec.request_in = submit.frame
  submit.response_in = pinfo.number
  return rec
end

local function bulk_in_complete(d, u, tvb, pinfo, submit)
  if u.status ~= 0 or d.known ~= true then
    return nil
  end
  local rec
  if u.ep == EP_EVENT_IN then
    rec = new_record("event", d, u, pinfo)
    if has_bytes(u, EVENT_LEN) and u.urb_len >= EVENT_LEN then
      local p = u.payload_off
      rec.event_address = tvb(p + EVENT_ADDRESS_OFFSET, 8):le_uint64()
      rec.length = tvb(p + EVENT_LENGTH_OFFSET, 4):le_uint()
      rec.tag = bit32.band(tvb(p + EVENT_TAG_OFFSET, 1):uint(), TAG_MASK)
    else
      rec.experts[#rec.experts + 1] = E.not_captured
    end
  elseif u.ep == EP_INTERRUPT_IN then
    rec = new_record("interrupt", d, u, pinfo)
    if has_bytes(u, INTERRUPT_LEN) and u.urb_len >= INTERRUPT_LEN then
      rec.interrupt = tvb(u.payload_off, INTERRUPT_LEN):le_uint()
      if bit32.band(rec.interrupt, INTERRUPT_FATAL_MASK) ~= 0 then
        rec.experts[#rec.experts + 1] = E.fatal
      end
    else
      rec.experts[#rec.experts + 1] = E.not_captured
    end
  elseif u.ep == EP_OUTPUT_IN and u.urb_len > 0 then
    rec = new_record("output", d, u, pinfo)
    rec.tag = TAG_OUTPUT
    d.output_chunk = d.output_chunk + 1
    rec.output_chunk = d.output_chunk
    rec.offset = d.output_offset
    rec.chunk_length = u.urb_len
    d.output_offset = d.output_offset + u.urb_len
    -- a chunk shorter than the read posted for it ends one output DMA
    rec.output_last = submit ~= nil and u.urb_len < submit.urb_len
    if rec.output_last then
      d.output_chunk = 0
      d.output_offset = 0
    end
  else
    return nil
  end
  if submit then
    rec.request_in = submit.frame
  end
  return rec
end

local function control_submit(d, u, tvb, pinfo)
  local s = u.setup
  if not s then
    return nil
  end
  local is_csr = (s.request_type == REQTYPE_VENDOR_OUT or s.request_type == REQTYPE_VENDOR_IN)
      and CSR_WIDTH_BY_REQUEST[s.request] ~= nil
  local is_dfu = (s.request_type == REQTYPE_DFU_OUT or s.request_type == REQTYPE_DFU_IN)
      and DFU_NAMES[s.request] ~= nil
  if not is_csr and not is_dfu then
    return nil
  end
  local address = s.index * 65536 + s.value
  if d.known == nil then
    if is_csr and REGISTERS[address] and edgetpu.prefs.heuristic then
      d.known = true
    else
      return nil
    end
  end
  if is_csr then
    local rec = new_record("csr", d, u, pinfo)
    rec.csr_address = address
    rec.csr_name = register_name(address)
    rec.csr_width = CSR_WIDTH_BY_REQUEST[s.request]
    rec.csr_write = s.request_type == REQTYPE_VENDOR_OUT
    local nbytes = rec.csr_width / 8
    if rec.csr_write then
      if has_bytes(u, nbytes) then
        rec.csr_value = tvb(u.payload_off, nbytes):le_uint64()
        rec.value_off = u.payload_off
        if address == CSR_MULTI_BO_EP then
          d.multi_ep = rec.csr_value:tonumber() ~= 0
        end
      else
        rec.experts[#rec.experts + 1] = E.not_captured
      end
    end
    return rec
  end
  local rec = new_record("dfu", d, u, pinfo)
  rec.dfu_request = s.request
  rec.dfu_length = s.length
  if s.request == DFU_DNLOAD or s.request == DFU_UPLOAD then
    rec.dfu_block = s.value
  end
  return rec
end

local function control_complete(d, u, tvb, pinfo, submit)
  if submit == nil or (submit.kind ~= "csr" and submit.kind ~= "dfu") then
    return nil
  end
  local rec = new_record(submit.kind, d, u, pinfo)
  for _, k in ipairs({"csr_address", "csr_name", "csr_width", "csr_write", "csr_value",
    "dfu_request", "dfu_block"}) do
    rec[k] = submit[k]
  end
  rec.request_in = submit.frame
  rec.status = u.status
  submit.response_in = pinfo.number
  if u.status ~= 0 then
    rec.experts[#rec.experts + 1] = E.failed
    return rec
  end
  if submit.kind == "csr" and not submit.csr_write then
    local nbytes = submit.csr_width / 8
    if has_bytes(u, nbytes) and u.urb_len >= nbytes then
      rec.csr_value = tvb(u.payload_off, nbytes):le_uint64()
      rec.value_off = u.payload_off
      submit.csr_value = rec.csr_value
    else
      rec.experts[#rec.experts + 1] = E.not_captured
    end
  elseif submit.kind == "dfu" then
    rec.dfu_length = u.urb_len
    if submit.dfu_request == DFU_GETSTATUS and has_bytes(u, DFU_STATUS_LEN) then
      rec.dfu_status = tvb(u.payload_off + DFU_STATUS_STATUS_OFFSET, 1):uint()
      rec.dfu_state = tvb(u.payload_off + DFU_STATUS_STATE_OFFSET, 1):uint()
    elseif submit.dfu_request == DFU_GETSTATE and has_bytes(u, 1) then
      rec.dfu_state = tvb(u.payload_off, 1):uint()
    end
  end
  return rec
end

-- First pass: what this frame carries, given everything before it.
local function analyse(u, tvb, pinfo)
  local d = device(u)
  if u.urb_type == URB_SUBMIT and u.setup and u.setup.request_type == GET_DESCRIPTOR_REQTYPE
      and u.setup.request == GET_DESCRIPTOR_REQUEST
      and bit32.rshift(u.setup.value, 8) == DEVICE_DESCRIPTOR_TYPE then
    pending[u.key] = {kind = "get_device_descriptor"}
    return nil
  end
  if u.urb_type == URB_COMPLETE then
    local vid, pid = device_ids(u, tvb, pending[u.key])
    if vid then
      -- a device descriptor settles the question for good
      pending[u.key] = nil
      d.known = is_edgetpu(vid, pid)
      return nil
    end
  end
  if d.known == false then
    return nil
  end
  if u.urb_type == URB_SUBMIT then
    local rec
    if u.xfer == XFER_CONTROL then
      rec = control_submit(d, u, tvb, pinfo)
    elseif u.xfer == XFER_BULK and u.ep < 0x80 then
      rec = bulk_out_submit(d, u, tvb, pinfo)
    elseif (u.xfer == XFER_BULK or u.xfer == XFER_INTERRUPT) and u.ep >= 0x80 then
      -- posting a read: remembered so its completion knows how much was asked for
      pending[u.key] = {kind = "read", frame = pinfo.number, urb_len = u.urb_len}
      return nil
    end
    if rec then
      pending[u.key] = rec
    end
    return rec
  end
  if u.urb_type ~= URB_COMPLETE then
    return nil -- submission errors carry no data
  end
  local submit = pending[u.key]
  pending[u.key] = nil
  if u.xfer == XFER_CONTROL then
    return control_complete(d, u, tvb, pinfo, submit)
  elseif u.xfer == XFER_BULK and u.ep < 0x80 then
    return bulk_out_complete(d, u, pinfo, submit)
  elseif u.xfer == XFER_BULK or u.xfer == XFER_INTERRUPT then
    return bulk_in_complete(d, u, tvb, pinfo, submit)
  end
  return nil
end

local function tag_name(tag)
  return TAG_NAMES[tag] or string.format("tag %d", tag)
end

local function csr_value_text(rec)
  if rec.csr_value == nil then
    return "?"
  end
  return hex64(rec.csr_value)
end

local function interrupt_text(word)
  local names = {}
  for bitno = 0, 31 do
    if bit32.band(word, bit32.lshift(1, bitno)) ~= 0 then
      names[#names + 1] = INTERRUPT_BITS[bitno] or string.format("bit %d", bitno)
    end
  end
  if #names == 0 then
    return "none"
  end
  return table.concat(names, ", ")
end

-- The Info column: what happened, in words.
local function describe(rec)
  local k = rec.kind
  if k == "header" then
    return string.format("Header: %s, %d bytes (transfer %d)", tag_name(rec.tag), rec.length,
      rec.transfer)
  elseif k == "payload" then
    if rec.transfer == nil then
      return string.format("Payload: %s, %d bytes at %d (multi-endpoint)", tag_name(rec.tag),
        rec.chunk_length, rec.offset)
    end
    return string.format("Payload: %s, %d bytes at %d of %d (transfer %d), %d left",
      tag_name(rec.tag), rec.chunk_length, rec.offset, rec.length, rec.transfer, rec.remaining)
  elseif k == "accepted" then
    local what = rec.accepted_kind == "header" and "header" or "payload"
    if rec.transfer == nil then
      return string.format("Accepted: %s %s", tag_name(rec.tag), what)
    end
    return string.format("Accepted: %s %s (transfer %d)", tag_name(rec.tag), what, rec.transfer)
  elseif k == "unexpected" then
    return string.format("Bulk OUT: %d bytes where a header was expected", rec.chunk_length)
  elseif k == "event" then
    if rec.tag == nil then
      return "Event (not captured)"
    elseif rec.tag == COMPLETION_TAG then
      return string.format("Event: %s (request finished)", tag_name(rec.tag))
    elseif rec.tag >= COMPLETION_TAG then
      return string.format("Event: %s", tag_name(rec.tag))
    end
    return string.format("Event: %s DMA, %d bytes at %s", tag_name(rec.tag), rec.length,
      hex64(rec.event_address))
  elseif k == "interrupt" then
    if rec.interrupt == nil then
      return "Interrupt (not captured)"
    end
    return string.format("Interrupt: 0x%08x (%s)", rec.interrupt, interrupt_text(rec.interrupt))
  elseif k == "output" then
    return string.format("Output: %d bytes at %d (chunk %d%s)", rec.chunk_length, rec.offset,
      rec.output_chunk, rec.output_last and ", last" or "")
  elseif k == "csr" then
    if not rec.csr_write and rec.csr_value == nil and not rec.request_in then
      return string.format("CSR read %s (%d-bit)", rec.csr_name, rec.csr_width)
    end
    local op = rec.csr_write and ":=" or "->"
    local text = string.format("CSR %s %s %s (%d-bit)", rec.csr_name, op, csr_value_text(rec),
      rec.csr_width)
    if rec.request_in then
      if rec.status ~= 0 then
        return string.format("CSR %s failed (status %d)", rec.csr_name, rec.status)
      end
      return text .. (rec.csr_write and ", done" or "")
    end
    return text
  elseif k == "dfu" then
    local name = DFU_NAMES[rec.dfu_request]
    if rec.request_in then
      if rec.status ~= 0 then
        return string.format("%s failed (status %d)", name, rec.status)
      end
      if rec.dfu_status ~= nil then
        return string.format("%s -> status %d, state %d", name, rec.dfu_status, rec.dfu_state)
      elseif rec.dfu_state ~= nil then
        return string.format("%s -> state %d", name, rec.dfu_state)
      end
      return string.format("%s done, %d bytes", name, rec.dfu_length)
    end
    if rec.dfu_block ~= nil then
      return string.format("%s block %d, %d bytes", name, rec.dfu_block, rec.dfu_length)
    end
    return string.format("%s, %d bytes", name, rec.dfu_length)
  end
  return k
end

-- Add a field, pointing at its bytes when they were captured.
local function add(tree, tvb, rec, field, value, rel_off, len)
  if value == nil then
    return
  end
  if rel_off ~= nil and rec.captured >= rel_off + len then
    return tree:add(field, tvb(rec.payload_off + rel_off, len), value)
  end
  return tree:add(field, value)
end

local function set_columns(rec, pinfo)
  pinfo.cols.protocol:set("EdgeTPU")
  pinfo.cols.info:set(describe(rec))
end

local function render(rec, tvb, pinfo, tree)
  set_columns(rec, pinfo)
  if not tree then
    return
  end
  local t = tree:add(edgetpu, "Edge TPU: " .. describe(rec))
  t:add(F.kind, rec.kind)
  t:add(F.device, rec.device)
  local k = rec.kind
  local is_header = k == "header"
  local tag_off = is_header and HEADER_TAG_OFFSET or (k == "event" and EVENT_TAG_OFFSET) or nil
  add(t, tvb, rec, F.tag, rec.tag, tag_off, 1)
  local length_off = is_header and HEADER_LENGTH_OFFSET or (k == "event" and EVENT_LENGTH_OFFSET)
      or nil
  add(t, tvb, rec, F.length, rec.length, length_off, 4)
  add(t, tvb, rec, F.transfer, rec.transfer)
  add(t, tvb, rec, F.offset, rec.offset)
  add(t, tvb, rec, F.chunk_length, rec.chunk_length)
  add(t, tvb, rec, F.remaining, rec.remaining)
  add(t, tvb, rec, F.header_in, rec.header_in)
  if rec.payload_in then
    for _, frame in ipairs(rec.payload_in) do
      t:add(F.payload_in, frame)
    end
  end
  add(t, tvb, rec, F.request_in, rec.request_in)
  add(t, tvb, rec, F.response_in, rec.response_in)
  add(t, tvb, rec, F.event_address, rec.event_address, EVENT_ADDRESS_OFFSET, 8)
  if rec.interrupt ~= nil then
    local it = t:add(F.interrupt, tvb(rec.payload_off, INTERRUPT_LEN), rec.interrupt)
    for bitno = 0, 31 do
      local meaning = INTERRUPT_BITS[bitno]
      local field = meaning and F["interrupt_" .. meaning:lower():gsub(" ", "_")]
      if field then
        it:add_le(field, tvb(rec.payload_off, INTERRUPT_LEN))
      end
    end
  end
  add(t, tvb, rec, F.output_chunk, rec.output_chunk)
  add(t, tvb, rec, F.output_last, rec.output_last)
  add(t, tvb, rec, F.csr_address, rec.csr_address)
  add(t, tvb, rec, F.csr_name, rec.csr_name)
  add(t, tvb, rec, F.csr_width, rec.csr_width)
  add(t, tvb, rec, F.csr_write, rec.csr_write)
  if rec.csr_value ~= nil then
    if rec.value_off ~= nil and rec.value_off == rec.payload_off then
      t:add(F.csr_value, tvb(rec.value_off, rec.csr_width / 8), rec.csr_value)
    else
      t:add(F.csr_value, rec.csr_value)
    end
  end
  add(t, tvb, rec, F.dfu_request, rec.dfu_request)
  add(t, tvb, rec, F.dfu_block, rec.dfu_block)
  add(t, tvb, rec, F.dfu_length, rec.dfu_length)
  add(t, tvb, rec, F.dfu_status, rec.dfu_status, DFU_STATUS_STATUS_OFFSET, 1)
  add(t, tvb, rec, F.dfu_state, rec.dfu_state)
  for _, e in ipairs(rec.experts) do
    t:add_proto_expert_info(e)
  end
end

-- A post-dissector: Wireshark's own usbmon dissector runs first, natively, and shows the URB;
-- then this one reads the same record. Wireshark calls post-dissectors on every frame, with or
-- without a protocol tree (its first pass over a file), so the state is always complete.
--
-- Why not call the usbmon dissector from Lua (an earlier version wrapped it in the wtap_encap
-- table and called it with pcall): on records cut short by the snap length, each such call left
-- Lua's C-call count one higher (measured: not calling it on cut records removed the failure;
-- the likely cause is a Wireshark exception, a C longjmp, unwinding past Lua's bookkeeping).
-- After a few hundred cut records, the DFU blocks of a firmware download, every later frame
-- failed with "C stack overflow" and lost its usb.* fields too. A post-dissector calls no other
-- dissector, so nothing of Wireshark's crosses Lua.
function edgetpu.dissector(tvb, pinfo, tree)
  local n = pinfo.number
  if not pinfo.visited and not analysed[n] then
    analysed[n] = true
    local u = usbmon(tvb)
    if u then
      records[n] = analyse(u, tvb, pinfo)
    end
  end
  local rec = records[n]
  if rec then
    render(rec, tvb, pinfo, tree)
  end
end

register_postdissector(edgetpu)
