/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1, made with the `openssl`
 * CLI (node:crypto cannot issue X.509 certificates). Only the processes of one benchmark run trust
 * the CA, through NODE_EXTRA_CA_CERTS: nothing disables certificate verification.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export interface Certs {
  readonly dir: string
  readonly caFile: string
  readonly keyFile: string
  readonly certFile: string
}

const openssl = (args: ReadonlyArray<string>, cwd: string) =>
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] })

export const makeCerts = (): Certs => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "tokenwarden-bench-"))
  try {
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir)
    openssl([
      "req",
      "-x509",
      "-new",
      "-key",
      "ca.key",
      "-sha256",
      "-days",
      "2",
      "-subj",
      "/CN=tokenwarden bench CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      "ca.pem"
    ], dir)
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key"], dir)
    openssl(["req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr"], dir)
    Fs.writeFileSync(
      Path.join(dir, "ext.cnf"),
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    openssl([
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-sha256",
      "-extfile",
      "ext.cnf",
      "-out",
      "server.pem"
    ], dir)
  } catch (error) {
    Fs.rmSync(dir, { recursive: true, force: true })
    throw new Error(`openssl failed (is it installed? \`which openssl\`): ${String(error)}`)
  }
  return {
    dir,
    caFile: Path.join(dir, "ca.pem"),
    keyFile: Path.join(dir, "server.key"),
    certFile: Path.join(dir, "server.pem")
  }
}

export const removeCerts = (certs: Certs): void => Fs.rmSync(certs.dir, { recursive: true, force: true })
