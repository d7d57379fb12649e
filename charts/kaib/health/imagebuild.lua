-- Argo CD health check for kaib.dev/ImageBuild (resource.customizations.health.kaib.dev_ImageBuild).
-- Argo CD sets `obj` to the live object; the script returns {status, message}.
-- Order: deletion, generation not yet observed, the user's cancel, then the kstatus conditions
-- (Stalled, Reconciling, Ready), then the build phase for statuses written before conditions.
-- Canceled is Suspended: a deliberate stop by the user, not a fault that should page anyone.
local hs = {}

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function describe(status, fallback)
  local text = status.phase or fallback
  if status.subState ~= nil and status.subState ~= "" and status.subState ~= status.phase then
    text = text .. " (" .. status.subState .. ")"
  end
  if status.message ~= nil and status.message ~= "" then
    text = text .. ": " .. status.message
  end
  return text
end

local status = obj.status

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Terminating: deleting the build's Azure resources"
  return hs
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if status.phase == "Canceled" then
  hs.status = "Suspended"
  hs.message = describe(status, "Canceled")
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(status, stalled.reason or "Stalled")
  return hs
end

local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(status, reconciling.reason or "Reconciling")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(status, "Ready")
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
elseif status.phase == "Failed" or status.phase == "PartiallySucceeded" then
  hs.status = "Degraded"
else
  -- Queued, Running, Canceling, or no phase yet.
  hs.status = "Progressing"
end
hs.message = describe(status, "Waiting for the operator")
return hs
