/**
 * Static "is this export a function?" check on esbuild's bundled ESM output, without running the code.
 *
 * It relies on the shape esbuild prints when bundling unminified ESM: top-level statements start at column 0,
 * the exports are one `export { local as name, ... };` statement at the end, and each local is declared at top level
 * as `function x(`, `async function x(`, `function* x(`, `class x`, or `var|let|const x = <init>`.
 * The initializer is classified by its first tokens: function / async function / arrow (`(...) =>`, `x =>`,
 * `async (...) =>`) are functions; class, object, array, string, number, template, boolean and null literals are
 * not; an alias (`var x = y;`) is followed; anything else (a call, a member access, `new`, `require_x()`...)
 * is 'unknown' and accepted: the executor then reports a clear error when it loads the module.
 */
export type ExportKind = 'function' | 'not-function' | 'unknown'

function escapeRe (s: string): string {
  return s.replace(/[$\\^.*+?()[\]{}|]/g, '\\$&')
}

/** export name -> local name, from the trailing `export { a as b, c };` */
export function exportLocals (code: string): Map<string, string> {
  const out = new Map<string, string>()
  const re = /^export\s*\{([^}]*)\};?/gm
  for (const m of code.matchAll(re)) {
    for (const part of m[1].split(',')) {
      const t = part.trim()
      if (t === '') continue
      const mm = /^([\w$]+)(?:\s+as\s+([\w$]+|"[^"]*"))?$/.exec(t)
      if (mm == null) continue
      out.set((mm[2] ?? mm[1]).replace(/^"|"$/g, ''), mm[1])
    }
  }
  return out
}

/** Index of the `)` that closes the `(` at `open`, skipping strings; -1 if not found. */
function closeParen (code: string, open: number): number {
  let depth = 0
  for (let i = open; i < code.length; i++) {
    const c = code[i]
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < code.length && code[i] !== c; i++) if (code[i] === '\\') i++
      continue
    }
    if (c === '(') depth++
    else if (c === ')' && --depth === 0) return i
  }
  return -1
}

function classifyInit (code: string, at: number, depth: number, seen: Set<string>): ExportKind {
  const rest = code.slice(at, at + 200)
  if (/^(async\s+)?function\b/.test(rest)) return 'function'
  if (/^(async\s+)?[\w$]+\s*=>/.test(rest)) return 'function'
  const asyncParen = /^async\s*\(/.exec(rest)
  if (rest.startsWith('(') || asyncParen != null) {
    const open = at + (asyncParen != null ? asyncParen[0].length - 1 : 0)
    const close = closeParen(code, open)
    if (close > 0 && /^\s*=>/.test(code.slice(close + 1, close + 10))) return 'function'
    return 'unknown'
  }
  if (/^class\b/.test(rest)) return 'not-function'
  if (/^([{["'`0-9-]|true\b|false\b|null\b|void 0\b)/.test(rest)) return 'not-function'
  const alias = /^([\w$]+)\s*;/.exec(rest)
  if (alias != null) return classifyLocal(code, alias[1], depth + 1, seen)
  return 'unknown'
}

function classifyLocal (code: string, local: string, depth = 0, seen = new Set<string>()): ExportKind {
  if (depth > 10 || seen.has(local)) return 'unknown'
  seen.add(local)
  const name = escapeRe(local)
  if (new RegExp(`^(?:async\\s+)?function\\s*\\*?\\s*${name}\\s*\\(`, 'm').test(code)) return 'function'
  if (new RegExp(`^class\\s+${name}\\b`, 'm').test(code)) return 'not-function'
  const decl = new RegExp(`^(?:var|let|const)\\s+${name}\\s*=\\s*`, 'm').exec(code)
  if (decl != null) return classifyInit(code, decl.index + decl[0].length, depth, seen)
  return 'unknown'
}

/** Classifies each named export of a bundled module. */
export function classifyExports (code: string, names: string[]): Map<string, ExportKind> {
  const locals = exportLocals(code)
  const out = new Map<string, ExportKind>()
  for (const n of names) {
    const local = locals.get(n)
    out.set(n, local == null ? 'unknown' : classifyLocal(code, local))
  }
  return out
}
