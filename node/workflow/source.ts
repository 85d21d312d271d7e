import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument } from 'yaml'
import type { Document } from 'yaml'
import { quote } from './errors.ts'
import type { WorkflowIssue } from './errors.ts'

export type KeyPath = Array<string | number>

/** `['steps', 'split', 'out', 1]` -> `steps.split.out[1]` */
export function pathToString (path: KeyPath): string {
  let out = ''
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`
    else out += out === '' ? p : `.${p}`
  }
  return out
}

/**
 * A parsed YAML document that can tell where a key path sits in the text, so every issue found later
 * (schema or semantic) still points at a line and column.
 */
export class WorkflowSource {
  readonly file: string
  readonly text: string
  readonly doc: Document
  readonly data: unknown
  private readonly lines: LineCounter

  constructor (text: string, file: string) {
    this.file = file
    this.text = text
    this.lines = new LineCounter()
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: true, uniqueKeys: true })
    let data: unknown
    if (this.doc.errors.length === 0) {
      // a document can parse and still not convert: an alias to an anchor defined after it, too many aliases
      try { data = this.doc.toJS({ maxAliasCount: 100 }) } catch (err) { this.conversionError = (err as Error).message }
    }
    this.data = data
  }

  /** why the parsed document could not be turned into data, if it could not */
  private conversionError?: string

  /** YAML syntax errors, with line:column and the offending source line quoted. */
  syntaxIssues (): WorkflowIssue[] {
    if (this.conversionError !== undefined) {
      const what = this.conversionError.split('\n')[0]
      return [{ file: this.file, path: '', message: `YAML error: ${what}`, value: quote(what) }]
    }
    return this.doc.errors.map(e => {
      const pos = e.linePos?.[0] ?? (e.pos != null ? this.lines.linePos(e.pos[0]) : undefined)
      const srcLine = pos != null ? (this.text.split(/\r?\n/)[pos.line - 1] ?? '') : ''
      const what = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')
      const value = quote(srcLine.trim())
      return {
        file: this.file,
        path: '',
        line: pos?.line,
        column: pos?.col,
        message: `YAML syntax error (${e.code}): ${what}, in ${value}`,
        value
      }
    })
  }

  /** Line and column of the value at `path` (or of its key, when `key` is set, e.g. for an unknown key). */
  position (path: KeyPath, key = false): { line?: number, column?: number } {
    let node: unknown = this.doc.contents
    let keyNode: unknown
    for (const p of path) {
      if (!isNode(node)) { node = undefined; break }
      if (isMap(node)) {
        const pair = node.items.find(it => isPair(it) && (isScalar(it.key) ? String(it.key.value) : String(it.key)) === String(p))
        keyNode = pair?.key
        node = pair?.value
      } else if ('items' in node && Array.isArray(node.items)) {
        keyNode = undefined
        node = node.items[Number(p)]
      } else {
        node = undefined
      }
      if (node == null && keyNode == null) break
    }
    const target = key && keyNode != null ? keyNode : (node ?? keyNode)
    const range = isNode(target) ? target.range : undefined
    if (range == null) {
      // fall back to the nearest enclosing node that has a position
      return path.length > 0 ? this.position(path.slice(0, -1)) : {}
    }
    const { line, col } = this.lines.linePos(range[0])
    return { line, column: col }
  }

  issue (path: KeyPath, message: string, value?: unknown, opts: { key?: boolean } = {}): WorkflowIssue {
    const quoted = value === undefined ? undefined : quote(value)
    return {
      file: this.file,
      path: pathToString(path),
      ...this.position(path, opts.key === true),
      message: quoted === undefined ? message : message.includes('%v') ? message.replace('%v', quoted) : `${message}: ${quoted}`,
      value: quoted
    }
  }
}
