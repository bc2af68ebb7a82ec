/**
 * A binary min-heap of items keyed by a deadline, with removal and re-keying of any item in O(log n).
 * Each item carries its own deadline and its index in the heap (or -1), so the heap costs one array slot
 * per item and allocates nothing per operation: a pool of 100,000 tokens keeps one array, not 100,000
 * timers.
 *
 * @internal
 */
export interface HeapItem {
  deadline: number
  heapIndex: number
}

/** @internal */
export class DeadlineHeap<A extends HeapItem> {
  private readonly items: Array<A> = []

  get size(): number {
    return this.items.length
  }

  /** The item with the earliest deadline, without removing it. */
  peek(): A | undefined {
    return this.items[0]
  }

  has(item: A): boolean {
    return item.heapIndex >= 0 && this.items[item.heapIndex] === item
  }

  /** Inserts `item` at `deadline`, or moves it there if it is already in. Tells whether it is now the first. */
  set(item: A, deadline: number): boolean {
    if (this.has(item)) {
      const before = item.deadline
      item.deadline = deadline
      if (deadline < before) this.up(item.heapIndex)
      else this.down(item.heapIndex)
    } else {
      item.deadline = deadline
      item.heapIndex = this.items.length
      this.items.push(item)
      this.up(item.heapIndex)
    }
    return this.items[0] === item
  }

  /** Removes and returns the first item. */
  pop(): A | undefined {
    const first = this.items[0]
    if (first !== undefined) this.removeAt(0)
    return first
  }

  remove(item: A): void {
    if (this.has(item)) this.removeAt(item.heapIndex)
  }

  private removeAt(index: number): void {
    const items = this.items
    const removed = items[index]!
    const last = items.pop()!
    removed.heapIndex = -1
    if (index === items.length) return
    items[index] = last
    last.heapIndex = index
    this.down(index)
    this.up(last.heapIndex)
  }

  private up(index: number): void {
    const items = this.items
    const item = items[index]!
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = items[parentIndex]!
      if (parent.deadline <= item.deadline) break
      items[index] = parent
      parent.heapIndex = index
      index = parentIndex
    }
    items[index] = item
    item.heapIndex = index
  }

  private down(index: number): void {
    const items = this.items
    const length = items.length
    const item = items[index]!
    while (true) {
      const left = 2 * index + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && items[right]!.deadline < items[left]!.deadline ? right : left
      const smallest = items[child]!
      if (smallest.deadline >= item.deadline) break
      items[index] = smallest
      smallest.heapIndex = index
      index = child
    }
    items[index] = item
    item.heapIndex = index
  }
}
