// The part of oidc-provider 9 (panva/node-oidc-provider, untyped JavaScript) the interop suite uses.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http"

  export default class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>)
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    use(middleware: (ctx: any, next: () => Promise<void>) => Promise<void>): void
    on(event: string, listener: (...args: Array<any>) => void): this
    readonly AccessToken: { find(value: string): Promise<{ destroy(): Promise<void> } | undefined> }
    readonly ClientCredentials: {
      new(properties: Record<string, unknown>): { save(): Promise<string>; readonly expiration: number }
      find(value: string): Promise<{ readonly clientId: string } | undefined>
    }
    registerGrantType(
      name: string,
      handler: (ctx: any) => Promise<void>,
      parameters?: Set<string>,
      allowedDuplicateParameters?: Set<string>
    ): void
  }
  export const errors: { readonly InvalidGrant: new(description: string) => Error }
}
