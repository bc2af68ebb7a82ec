import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"

const testingDir = Path.join(import.meta.dirname, "../../src/testing")

describe("the fakes", () => {
  it("implement their documents' rules on their own: no fake imports a provider module", () => {
    const fakes = Fs.readdirSync(testingDir).filter((f) => f.endsWith("Fake.ts"))
    assert.includeMembers(fakes, ["BaackFake.ts", "BarracudaFake.ts", "BuddyFake.ts"])
    for (const file of fakes) {
      const source = Fs.readFileSync(Path.join(testingDir, file), "utf8")
      // a rule shared by client and fake passes on both sides, bug or not
      assert.notMatch(source, /from "\.\.\/providers\//, file)
    }
  })
})
