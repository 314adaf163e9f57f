-- Argo CD health of a rollguard ModelDeployment (rollguard.dev/ModelDeployment).
local hs = {status = "Progressing", message = "Waiting for rollguard to evaluate"}
local function condition(status, kind)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then return c end
  end
  return nil
end
if obj.status == nil then return hs end
local status = obj.status
local invalid = condition(status, "Invalid")
if invalid ~= nil and invalid.status == "True" then
  hs.status = "Degraded"
  hs.message = "Invalid: " .. (invalid.message or "")
  return hs
end
if status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and status.observedGeneration < obj.metadata.generation then
  hs.message = "Waiting for rollguard to evaluate the new spec"
  return hs
end
local phase = status.phase
local message = status.message or ""
if phase == "Healthy" or phase == "Cooldown" then
  hs.status = "Healthy"
elseif phase == "Degraded" or phase == "Escalated" then
  hs.status = "Degraded"
elseif phase == "AwaitingApproval" then
  hs.status = "Suspended"
elseif phase == "RollingBack" or phase == "Validating" or phase == "Inconclusive" then
  hs.status = "Progressing"
else
  return hs
end
hs.message = phase .. ": " .. message
return hs
