/**
 * The token server's configuration travels in the tenant segment of the token URL
 * (`/{tenant}/oauth2/v2.0/token`, the path @azure/identity calls), so every library, child process
 * and run has its own counters and behaviour without any control channel.
 */
export interface TenantConfig {
  /** Which library (and run) the counters belong to: letters and digits. */
  readonly label: string
  /** Lifetime of issued tokens, seconds. */
  readonly lifetime: number
  /** Server latency before answering, milliseconds. */
  readonly delay: number
  /** Share of token requests that fail (503, 429 with Retry-After, connection reset), percent. */
  readonly faults: number
  /**
   * A cohort: the first `cohort` tokens all expire when the first one does, as if issued at the same
   * moment however long the library took to ask for them (`expires_in` is shortened, in whole seconds).
   */
  readonly cohort?: number | undefined
}

export const tenantOf = (c: TenantConfig): string =>
  `${c.label}-l${c.lifetime}-d${c.delay}-f${c.faults}${c.cohort === undefined ? "" : `-c${c.cohort}`}`

export const parseTenant = (tenant: string): TenantConfig | undefined => {
  const match = /^([a-z0-9]+)-l(\d+)-d(\d+)-f(\d+)(?:-c(\d+))?$/.exec(tenant)
  if (match === null) return undefined
  return {
    label: match[1]!,
    lifetime: Number(match[2]),
    delay: Number(match[3]),
    faults: Number(match[4]),
    cohort: match[5] === undefined ? undefined : Number(match[5])
  }
}

export const tokenPath = (tenant: string) => `/${tenant}/oauth2/v2.0/token`

/** Access tokens carry their expiry (epoch ms) so a client can tell an expired one: `at.{expiresAt}.{n}.{random}`. */
export const expiryOf = (accessToken: string): number => Number(accessToken.split(".")[1])

export interface TenantStats {
  readonly count: number
  readonly faults: number
  readonly arrivals?: ReadonlyArray<number>
}

let runCounter = 0
/** A label unique to this process and call: letters and digits only. */
export const uniqueLabel = (prefix: string): string =>
  `${prefix}${process.pid.toString(36)}${(runCounter++).toString(36)}${Date.now().toString(36).slice(-4)}`
