/** The shapes of API.md (and the extensions in docs/api.md), as the hub answers them. */

export type Role = "owner" | "writer" | "viewer";

export interface User {
  id: string;
  email: string;
  name: string | null;
  plan: string;
  created_at: string;
  passcode_enabled: boolean;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
  user: User;
}

export interface ContainerLimits {
  cpus: number;
  memory_mb: number;
  pids?: number;
  ttl_seconds?: number;
  idle_timeout_seconds?: number;
  network?: string;
  read_only?: boolean;
}

export interface Container {
  id: string;
  name: string;
  image: string;
  status: string;
  created_at: string;
  expires_at: string | null;
  ended_at?: string | null;
  end_reason?: string | null;
  limits: ContainerLimits;
}

export interface CreateContainer {
  image?: string;
  name?: string;
  cpus?: number;
  memory_mb?: number;
  env?: Record<string, string>;
  ttl_seconds?: number;
}

export interface CatalogImage {
  name: string;
  image: string;
  default: boolean;
}

export interface AgentMetrics {
  cpu_percent?: number;
  memory_total?: number;
  memory_used?: number;
  memory_percent?: number;
  disk_total?: number;
  disk_used?: number;
  disk_percent?: number;
  load1?: number;
  load5?: number;
  load15?: number;
  uptime_seconds?: number;
  agent_rss?: number;
}

export interface Agent {
  id: string;
  name: string;
  hostname: string;
  os: string;
  arch: string;
  version: string;
  status: "online" | "offline";
  last_seen: string | null;
  created_at?: string;
  metrics: AgentMetrics | null;
}

export interface AgentToken {
  token: string;
  expires_at: string;
  install_command: string;
}

export interface Participant {
  id: string;
  user: string;
  role: Role;
}

export interface RecordingInfo {
  available: boolean;
  bytes: number;
  duration: number;
}

export interface Session {
  id: string;
  target: string;
  owner: string;
  status: "live" | "ended";
  started_at: string;
  ended_at: string | null;
  exit_code?: number | null;
  participants: Participant[];
  recording: RecordingInfo;
}

export interface Share {
  id: string;
  session: string;
  role: "viewer" | "writer";
  passcode_required: boolean;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  token?: string;
}

export interface ShareCreated {
  share: Share & { token: string };
  url: string;
  expires_at: string | null;
}

export interface ShareInfo extends Share {
  target: string;
  status: string;
}

export interface ShareRequest {
  role: "viewer" | "writer";
  passcode?: string;
  expires_in?: number;
}

export type ApprovalStatus = "pending" | "approved" | "completed" | "rejected" | "expired";

export interface ExecResult {
  exit_code: number | null;
  stdout: string;
  stderr: string;
  duration_ms: number;
  timed_out: boolean;
}

export interface ExecOptions {
  stdin?: string;
  env?: Record<string, string>;
  workdir?: string;
  timeout?: number;
  supervised?: boolean;
}

/** 200: the result; 202: held for a person's approval. */
export type ExecAnswer = ExecResult | { approval: Approval };

export type PolicyMode = "auto" | "approve_all" | "approve_risky";

export interface PolicyBody {
  mode: PolicyMode;
  allow?: string[];
  deny?: string[];
}

export interface Policy extends PolicyBody {
  target: string;
  paused: boolean;
}

export interface Approval {
  id: string;
  target: string;
  session: string | null;
  cmd: string;
  original_cmd?: string | null;
  requested_by: string;
  status: ApprovalStatus;
  reason?: string | null;
  created_at: string;
  expires_at?: string | null;
  decided_by?: string | null;
  decided_at?: string | null;
  result?: ExecResult | null;
}

export interface PasscodeSetup {
  secret: string;
  otpauth_uri: string;
  enabled: false;
}

export interface PasscodeEnabled {
  enabled: true;
  recovery_codes: string[];
}

export interface ApiToken {
  id: string;
  name: string;
  scopes: string[];
  expires_at: string | null;
  created_at?: string;
  last_used_at?: string | null;
}

export interface ApiTokenCreated extends ApiToken {
  token: string;
}

export interface CreateApiToken {
  name: string;
  scopes?: string[];
  expires_in?: number;
}

export interface SshKey {
  id: string;
  name: string;
  fingerprint: string;
  algorithm?: string;
  public_key?: string;
  created_at?: string;
  last_used_at?: string | null;
}

export interface PlanLimits {
  containers: number | null;
  agents: number | null;
  session_minutes_per_month: number | null;
  recording_retention_days: number | null;
  container_cpus?: number | null;
  container_memory_mb?: number | null;
  container_ttl_seconds?: number | null;
}

export interface Plan {
  id: string;
  name: string;
  price_cents: number;
  interval: string;
  limits: PlanLimits;
}

export interface Usage {
  plan: string;
  period_start: string;
  period_end: string;
  usage: {
    container_seconds: number;
    session_seconds: number;
    recording_bytes: number;
    containers_running: number;
    agents: number;
  };
  limits: PlanLimits;
}

export type SubscribeResult = { checkout_url: string } | { subscription: Record<string, unknown> };

export interface AuditEvent {
  id: string;
  action: string;
  target: string | null;
  ip: string | null;
  detail: Record<string, unknown> | null;
  created_at: string;
}
