-- Argo CD health of a rollguard RollbackDecision (rollguard.dev/RollbackDecision).
local hs = {status = "Progressing", message = "Decision just made"}
if obj.status == nil or obj.status.phase == nil then return hs end
local phase = obj.status.phase
local message = obj.status.message or ""
if phase == "Succeeded" or phase == "DryRun" or phase == "Rejected" or phase == "Superseded" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Expired" then
  hs.status = "Degraded"
elseif phase == "PendingApproval" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = phase .. ": " .. message
return hs
