import type { StepContext } from 'dflow'

export type Matrix = number[][]
export type Block = { start: number, rows: Matrix }

/** Number of row blocks A is cut into (at most; fewer when A has fewer rows). */
export const BLOCKS = 4

export class MatrixShapeError extends Error {
  static readonly NAME = 'MatrixShapeError'
  constructor (message: string) {
    super(message)
    this.name = MatrixShapeError.NAME
  }
}

/** Checks that m is a non-empty rectangular matrix of finite numbers; returns [rows, cols]. */
export function shape (m: unknown, name: string): [number, number] {
  if (!Array.isArray(m) || m.length === 0) throw new MatrixShapeError(`${name} must be a non-empty list of rows`)
  const cols = Array.isArray(m[0]) ? m[0].length : -1
  if (cols < 1) throw new MatrixShapeError(`${name}[0] must be a non-empty list of numbers`)
  m.forEach((row: unknown, i) => {
    if (!Array.isArray(row) || row.length !== cols) throw new MatrixShapeError(`${name}[${i}] must have ${cols} numbers`)
    row.forEach((x: unknown, j) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) throw new MatrixShapeError(`${name}[${i}][${j}] is not a finite number`)
    })
  })
  return [m.length, cols]
}

/** The naive product, for checking. */
export function multiply (a: Matrix, b: Matrix): Matrix {
  const p = b[0].length
  return a.map(row => {
    const out = new Array<number>(p).fill(0)
    for (let k = 0; k < row.length; k++) {
      const x = row[k]
      const bk = b[k]
      for (let j = 0; j < p; j++) out[j] += x * bk[j]
    }
    return out
  })
}

/** Largest absolute element-wise difference (Infinity when the shapes differ): the numeric check. */
export function maxAbsDiff (x: Matrix, y: Matrix): number {
  if (x.length !== y.length) return Infinity
  let d = 0
  for (let i = 0; i < x.length; i++) {
    if (x[i].length !== y[i].length) return Infinity
    for (let j = 0; j < x[i].length; j++) d = Math.max(d, Math.abs(x[i][j] - y[i][j]))
  }
  return d
}

export async function split (ctx: StepContext): Promise<void> {
  const [a, b] = await Promise.all([ctx.input<Matrix>('a'), ctx.input<Matrix>('b')])
  const [n, m] = shape(a, 'a')
  const [mb] = shape(b, 'b')
  if (m !== mb) throw new MatrixShapeError(`a is ${n}x${m} but b has ${mb} rows; they must match`)
  const size = Math.ceil(n / Math.min(BLOCKS, n))
  for (let start = 0; start < n; start += size) {
    const block: Block = { start, rows: a.slice(start, start + size) }
    ctx.emit('blocks', block)
  }
}

export async function compute (ctx: StepContext): Promise<{ rows: Block }> {
  const [block, b] = await Promise.all([ctx.input<Block>('block'), ctx.input<Matrix>('b')])
  return { rows: { start: block.start, rows: multiply(block.rows, b) } }
}

export async function merge (ctx: StepContext): Promise<{ product: Matrix, rows: number, cols: number }> {
  const [parts, b] = await Promise.all([ctx.input<Block[]>('parts'), ctx.input<Matrix>('b')])
  const product: Matrix = []
  for (const part of [...parts].sort((x, y) => x.start - y.start)) {
    if (part.start !== product.length) throw new MatrixShapeError(`block at row ${part.start} does not follow row ${product.length}`)
    product.push(...part.rows)
  }
  return { product, rows: product.length, cols: b[0].length }
}
