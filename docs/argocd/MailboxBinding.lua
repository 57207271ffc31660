-- Argo CD health check for mailops.dev/MailboxBinding: resource.customizations.health.mailops.dev_MailboxBinding
-- (Lua 5.1, as Argo CD's gopher-lua). Healthy: Ready=True at the current generation;
-- Progressing: no status yet, an older generation observed, Reconciling, or a deletion
-- waiting for its users (Terminating=True, InUse); Degraded: Ready=False, with its message.
-- The three kinds share this body; tests/argocd/test_health_lua.py keeps them equal.
local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

-- A provider or service account held in deletion by its users: waiting, not broken.
local terminating = condition("Terminating")
if terminating ~= nil and terminating.status == "True" and terminating.reason == "InUse" then
  hs.status = "Progressing"
  hs.message = text(terminating, "deletion waits for the objects still using it")
  return hs
end

local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report Ready"
  return hs
end

-- A status about an older generation says nothing about the current spec.
local generation = obj.metadata.generation
local observed = ready.observedGeneration
if observed == nil then
  observed = obj.status.observedGeneration
end
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "Ready")
elseif ready.reason == "Reconciling" or ready.status ~= "False" then
  hs.status = "Progressing"
  hs.message = text(ready, "Reconciling")
else
  hs.status = "Degraded"
  hs.message = text(ready, "Not Ready")
end
return hs
