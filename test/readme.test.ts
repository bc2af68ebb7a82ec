/**
 * The README's code is checked code: every TypeScript (and JavaScript) block is type-checked as a
 * module of this repository, with tsconfig.json's settings (strict, `exactOptionalPropertyTypes`) and
 * its `paths`, so `tokenwarden` means the sources. A snippet that stops compiling fails `npm test`.
 *
 * A block that is a fragment (a few lines inside `Effect.gen`) is preceded by an HTML comment, which
 * GitHub does not show, giving the code around it; the line `// README block` marks where it goes:
 *
 *     <!-- checked inside:
 *     import { Effect } from "effect"
 *     Effect.gen(function*() {
 *     // README block
 *     })
 *     -->
 *
 * Unused declarations are allowed (a snippet may show one alone); everything else is as strict as the
 * repository. The plain JavaScript examples (`examples/*.mjs`) are checked the same way (`checkJs`).
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))

interface Block {
  /** The README line of the block's first code line (1-based). */
  readonly line: number
  readonly lang: string
  readonly code: string
  /** The code around a fragment, from the HTML comment before it. */
  readonly before: string
  readonly after: string
}

const checked: Record<string, ".ts" | ".mjs"> = { ts: ".ts", typescript: ".ts", js: ".mjs", javascript: ".mjs" }
const placeholder = "// README block"

/** The fenced code blocks of a Markdown text, with the `checked inside` comment right before each. */
const codeBlocks = (markdown: string): Array<Block> => {
  const lines = markdown.split("\n")
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!)
    if (open === null) continue
    const fence = open[1]!
    let end = i + 1
    while (end < lines.length && !lines[end]!.trimStart().startsWith(fence)) end++
    let before = ""
    let after = ""
    if (lines[i - 1]?.trim() === "-->") {
      let start = i - 1
      while (start > 0 && !lines[start]!.startsWith("<!-- checked inside:")) start--
      const around = lines.slice(start + 1, i - 1)
      const at = around.indexOf(placeholder)
      if (at === -1) throw new Error(`README.md:${start + 1}: a "checked inside" comment without "${placeholder}"`)
      before = around.slice(0, at).join("\n")
      after = around.slice(at + 1).join("\n")
    }
    blocks.push({ line: i + 2, lang: open[2]!.toLowerCase(), code: lines.slice(i + 1, end).join("\n"), before, after })
    i = end
  }
  return blocks
}

const parsed = ts.getParsedCommandLineOfConfigFile(Path.join(root, "tsconfig.json"), {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => {
    throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
  }
})!
const options: ts.CompilerOptions = {
  ...parsed.options,
  noEmit: true,
  noUnusedLocals: false,
  noUnusedParameters: false,
  allowJs: true,
  checkJs: true
}

interface Source {
  readonly name: string
  readonly text: string
  /** Where a line of the virtual file is in the README, for messages. */
  readonly where: (line: number) => string
}

const sourceOf = (block: Block): Source => {
  const before = block.before === "" ? 0 : block.before.split("\n").length
  const blockLines = block.code.split("\n").length
  return {
    // in the repository's root: its package.json makes the file an ES module, its node_modules and paths resolve
    name: Path.join(root, `README.md.${block.line}${checked[block.lang]}`),
    text: [block.before, block.code, block.after].filter((part, i) => i === 1 || part !== "").join("\n"),
    where: (line) =>
      line < before || line >= before + blockLines
        ? `README.md:${block.line - 2} (the code around the block)`
        : `README.md:${block.line + line - before}`
  }
}

/** Type-checks virtual files and real ones in one program; the diagnostics of each, as readable lines. */
const typeCheck = (sources: ReadonlyArray<Source>, files: ReadonlyArray<string> = []): Map<string, Array<string>> => {
  const virtual = new Map(sources.map((s) => [s.name, s]))
  const host = ts.createCompilerHost(options, true)
  const { fileExists, getSourceFile, readFile } = host
  host.fileExists = (name) => virtual.has(name) || fileExists.call(host, name)
  host.readFile = (name) => virtual.get(name)?.text ?? readFile.call(host, name)
  host.getSourceFile = (name, language, onError, fresh) => {
    const source = virtual.get(name)
    return source === undefined
      ? getSourceFile.call(host, name, language, onError, fresh)
      : ts.createSourceFile(name, source.text, language, true)
  }
  const program = ts.createProgram([...virtual.keys(), ...files], options, host)
  const result = new Map<string, Array<string>>()
  const global = program.getOptionsDiagnostics().concat(program.getGlobalDiagnostics())
  assert.deepStrictEqual(global.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")), [])
  for (const name of [...virtual.keys(), ...files]) {
    const file = program.getSourceFile(name)
    assert.isDefined(file, name)
    result.set(
      name,
      ts.getPreEmitDiagnostics(program, file).map((d) => {
        const line = d.start === undefined ? 0 : file!.getLineAndCharacterOfPosition(d.start).line
        const where = virtual.get(name)?.where(line) ?? `${Path.relative(root, name)}:${line + 1}`
        return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`
      })
    )
  }
  return result
}

const blocks = codeBlocks(Fs.readFileSync(Path.join(root, "README.md"), "utf8"))
const code = blocks.filter((b) => b.lang in checked)
const examples = Fs.readdirSync(Path.join(root, "examples"))
  .filter((f) => f.endsWith(".mjs"))
  .map((f) => Path.join(root, "examples", f))

// two snippets that must fail: the one the README once had (the layer still needs an HttpClient), and a
// fragment, so that a check that lets anything through fails too
const broken = codeBlocks([
  "text",
  "```ts",
  "import { Context, Redacted } from \"effect\"",
  "import { ClientAuth, Grant, TokenClient, TokenSource } from \"tokenwarden\"",
  "class CrmToken extends Context.Tag(\"app/CrmToken\")<CrmToken, TokenSource.TokenSource>() {}",
  "const CrmTokenLive = TokenSource.layer(CrmToken, {",
  "  url: \"https://auth.example.com/oauth/token\",",
  "  clientAuth: ClientAuth.basic(\"my-client\", Redacted.make(\"secret\")),",
  "  grant: Grant.clientCredentials()",
  "})",
  "const tokens = await TokenClient.fromLayer(CrmToken, CrmTokenLive)",
  "```",
  "<!-- checked inside:",
  "import { Effect } from \"effect\"",
  "const program = Effect.gen(function*() {",
  placeholder,
  "})",
  "-->",
  "```ts",
  "const n: number = yield* Effect.succeed(\"one\")",
  "```"
].join("\n")).map((b) => ({ ...b, line: b.line + 10_000 }))

describe("README", () => {
  let diagnostics = new Map<string, Array<string>>()

  beforeAll(() => {
    diagnostics = typeCheck([...code, ...broken].map(sourceOf), examples)
  }, 120_000)

  it("has its code in checked blocks: TypeScript or JavaScript, else shell or plain text", () => {
    assert.isAtLeast(code.length, 8)
    for (const block of blocks) {
      assert.include(["ts", "typescript", "js", "javascript", "sh", "text", ""], block.lang, `README.md:${block.line}`)
    }
  })

  it.each(code.map((b) => [`README.md:${b.line} (${b.lang})`, b] as const))("%s type-checks", (_, block) => {
    assert.deepStrictEqual(diagnostics.get(sourceOf(block).name), [])
  })

  it("the plain JavaScript examples type-check against the package's declarations (checkJs)", () => {
    assert.isAbove(examples.length, 0)
    for (const example of examples) assert.deepStrictEqual(diagnostics.get(example), [], example)
  })

  it("the check fails a snippet that does not compile, naming its README line", () => {
    const [fromLayer, fragment] = broken.map((b) => diagnostics.get(sourceOf(b).name)!)
    assert.strictEqual(fromLayer!.length, 1, fromLayer!.join("\n"))
    assert.match(fromLayer![0]!, /^README\.md:10011: .*HttpClient/s)
    assert.strictEqual(fragment!.length, 1, fragment!.join("\n"))
    assert.match(fragment![0]!, /^README\.md:10020: Type 'string' is not assignable to type 'number'/)
  })
})
