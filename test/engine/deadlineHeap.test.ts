import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { DeadlineHeap, type HeapItem } from "../../src/internal/deadlineHeap.js"

interface Item extends HeapItem {
  readonly name: string
}

const item = (name: string): Item => ({ name, deadline: 0, heapIndex: -1 })

const drain = (heap: DeadlineHeap<Item>): Array<string> => {
  const out: Array<string> = []
  for (let next = heap.pop(); next !== undefined; next = heap.pop()) out.push(next.name)
  return out
}

describe("DeadlineHeap", () => {
  it("an empty heap: size 0, nothing to peek or pop", () => {
    const heap = new DeadlineHeap<Item>()
    assert.strictEqual(heap.size, 0)
    assert.isUndefined(heap.peek())
    assert.isUndefined(heap.pop())
  })

  it("pops by deadline, whatever the order of insertion; peek does not remove", () => {
    const heap = new DeadlineHeap<Item>()
    const deadlines: Record<string, number> = { e: 50, a: 10, d: 40, b: 20, f: 60, c: 30 }
    for (const [name, deadline] of Object.entries(deadlines)) heap.set(item(name), deadline)
    assert.strictEqual(heap.size, 6)
    assert.strictEqual(heap.peek()?.name, "a")
    assert.strictEqual(heap.peek()?.name, "a")
    assert.strictEqual(heap.size, 6)
    assert.deepStrictEqual(drain(heap), ["a", "b", "c", "d", "e", "f"])
    assert.strictEqual(heap.size, 0)
  })

  it("set tells whether the item is now the first", () => {
    const heap = new DeadlineHeap<Item>()
    const a = item("a")
    const b = item("b")
    const c = item("c")
    assert.isTrue(heap.set(a, 100), "alone")
    assert.isFalse(heap.set(b, 200))
    assert.isTrue(heap.set(c, 50), "earlier than all")
    assert.isTrue(heap.set(b, 10), "moved to the front")
    assert.isFalse(heap.set(b, 300), "moved back")
    assert.strictEqual(heap.peek(), c)
  })

  it("re-keys an item already in: earlier and later, without adding it twice", () => {
    const heap = new DeadlineHeap<Item>()
    const items = ["a", "b", "c", "d", "e"].map(item)
    items.forEach((it, i) => heap.set(it, (i + 1) * 10))
    heap.set(items[4]!, 5) // e: 50 → 5
    heap.set(items[0]!, 45) // a: 10 → 45
    heap.set(items[2]!, 30) // c: unchanged
    assert.strictEqual(heap.size, 5)
    assert.strictEqual(items[4]!.deadline, 5)
    assert.deepStrictEqual(drain(heap), ["e", "b", "c", "d", "a"])
  })

  it("removes any item; its heapIndex is -1 after; removing again, or one never in, does nothing", () => {
    const heap = new DeadlineHeap<Item>()
    const items = ["a", "b", "c", "d", "e", "f", "g"].map(item)
    items.forEach((it, i) => heap.set(it, (i + 1) * 10))
    const [a, b, c, d, e, f, g] = items as [Item, Item, Item, Item, Item, Item, Item]
    heap.remove(d) // in the middle
    heap.remove(a) // the first
    heap.remove(g) // the last
    for (const gone of [a, d, g]) {
      assert.strictEqual(gone.heapIndex, -1)
      assert.isFalse(heap.has(gone))
    }
    heap.remove(d)
    heap.remove(item("never"))
    assert.strictEqual(heap.size, 4)
    for (const kept of [b, c, e, f]) assert.isTrue(heap.has(kept))
    assert.deepStrictEqual(drain(heap), ["b", "c", "e", "f"])
    for (const it of items) assert.strictEqual(it.heapIndex, -1)
  })

  it("an item popped or removed can be set again", () => {
    const heap = new DeadlineHeap<Item>()
    const a = item("a")
    const b = item("b")
    heap.set(a, 1)
    heap.set(b, 2)
    assert.strictEqual(heap.pop(), a)
    assert.strictEqual(a.heapIndex, -1)
    heap.set(a, 3)
    heap.remove(b)
    heap.set(b, 4)
    assert.strictEqual(heap.size, 2)
    assert.deepStrictEqual(drain(heap), ["a", "b"])
  })

  it("an item's index is where the heap holds it; another heap's item is not in this one", () => {
    const heap = new DeadlineHeap<Item>()
    const other = new DeadlineHeap<Item>()
    const a = item("a")
    const stranger = item("stranger")
    heap.set(a, 1)
    other.set(item("x"), 1)
    other.set(stranger, 2)
    assert.strictEqual(stranger.heapIndex, 1)
    // same index as nothing in this heap, same index 0 as `a`: neither makes it a member
    assert.isFalse(heap.has(stranger))
    heap.remove(stranger)
    assert.strictEqual(heap.size, 1)
    assert.strictEqual(stranger.heapIndex, 1, "another heap's item is left alone")
  })

  it("Infinity and negative deadlines order like any others", () => {
    const heap = new DeadlineHeap<Item>()
    heap.set(item("inf"), Infinity)
    heap.set(item("neg"), -5)
    heap.set(item("zero"), 0)
    assert.deepStrictEqual(drain(heap), ["neg", "zero", "inf"])
  })

  type Op =
    | { readonly _tag: "set"; readonly id: number; readonly deadline: number }
    | { readonly _tag: "remove"; readonly id: number }
    | { readonly _tag: "pop" }
    | { readonly _tag: "peek" }

  const ids = 12
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        _tag: fc.constant("set" as const),
        id: fc.nat(ids - 1),
        // few distinct deadlines, so ties are common
        deadline: fc.integer({ min: 0, max: 20 })
      })
    },
    { weight: 1, arbitrary: fc.record({ _tag: fc.constant("remove" as const), id: fc.nat(ids - 1) }) },
    { weight: 2, arbitrary: fc.constant({ _tag: "pop" as const }) },
    { weight: 1, arbitrary: fc.constant({ _tag: "peek" as const }) }
  )

  it.prop(
    "behaves as a sorted array: pop order by deadline, size, membership and heapIndex",
    [fc.array(op, { maxLength: 200 })],
    ([ops]) => {
      const heap = new DeadlineHeap<Item>()
      const items = Array.from({ length: ids }, (_, i) => item(`#${i}`))
      // the model: the members and their deadlines
      const model = new Map<Item, number>()
      const min = () => Math.min(...model.values())
      for (const o of ops) {
        switch (o._tag) {
          case "set": {
            const it = items[o.id]!
            const first = heap.set(it, o.deadline)
            model.set(it, o.deadline)
            assert.strictEqual(it.deadline, o.deadline)
            // the first is a member of least deadline; a strictly earliest item is always first
            if (first) assert.strictEqual(o.deadline, min())
            const others = [...model].filter(([x]) => x !== it).map(([, d]) => d)
            if (others.every((d) => d > o.deadline)) assert.isTrue(first)
            break
          }
          case "remove": {
            const it = items[o.id]!
            heap.remove(it)
            model.delete(it)
            assert.strictEqual(it.heapIndex, -1)
            break
          }
          case "pop": {
            const popped = heap.pop()
            if (model.size === 0) {
              assert.isUndefined(popped)
              break
            }
            assert.isDefined(popped)
            assert.isTrue(model.has(popped!), "a member")
            assert.strictEqual(model.get(popped!), min(), "of least deadline")
            assert.strictEqual(popped!.deadline, model.get(popped!))
            model.delete(popped!)
            assert.strictEqual(popped!.heapIndex, -1)
            break
          }
          case "peek": {
            const first = heap.peek()
            if (model.size === 0) assert.isUndefined(first)
            else assert.strictEqual(model.get(first!), min())
            break
          }
        }
        assert.strictEqual(heap.size, model.size)
        for (const it of items) {
          assert.strictEqual(heap.has(it), model.has(it), it.name)
          if (!model.has(it)) assert.strictEqual(it.heapIndex, -1, it.name)
        }
      }
      // what is left comes out sorted, and every item ends out of the heap
      const rest: Array<number> = []
      for (let next = heap.pop(); next !== undefined; next = heap.pop()) rest.push(next.deadline)
      assert.deepStrictEqual(rest, [...model.values()].sort((x, y) => x - y))
      for (const it of items) assert.strictEqual(it.heapIndex, -1)
    },
    { fastCheck: { numRuns: 500 } }
  )
})
