/**
 * A small markdown to HTML converter: ATX headings, paragraphs, **strong** / *em* / _em_, `code`,
 * fenced code blocks, unordered (- * +) and ordered (1.) lists, [links](url), and horizontal rules.
 * Everything is HTML-escaped first, so the output never carries markup from the input.
 */

export function escapeHtml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

export function inline (text: string): string {
  const codes: string[] = []
  // code spans first, so nothing inside them is formatted
  let s = text.replace(/`([^`]+)`/g, (_, c: string) => `\u0000${codes.push(`<code>${escapeHtml(c)}</code>`) - 1}\u0000`)
  s = escapeHtml(s)
  s = s.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_, label: string, url: string) =>
    /^(https?:|mailto:|\/|#|\.)/.test(url) ? `<a href="${url}">${label}</a>` : label)
  s = s.replace(/\*\*(.+?)\*\*/g, '<strong>$1</strong>').replace(/__(.+?)__/g, '<strong>$1</strong>')
  s = s.replace(/\*(.+?)\*/g, '<em>$1</em>').replace(/(^|\W)_(.+?)_(?=\W|$)/g, '$1<em>$2</em>')
  return s.replace(/\u0000(\d+)\u0000/g, (_, i: string) => codes[Number(i)])
}

export function markdownToHtml (markdown: string): string {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n')
  const out: string[] = []
  let para: string[] = []
  let list: { tag: 'ul' | 'ol', items: string[] } | null = null
  const flush = (): void => {
    if (para.length > 0) out.push(`<p>${inline(para.join(' '))}</p>`)
    para = []
    if (list != null) out.push(`<${list.tag}>${list.items.map(i => `<li>${inline(i)}</li>`).join('')}</${list.tag}>`)
    list = null
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    const fence = /^```\s*([\w-]*)\s*$/.exec(line)
    if (fence != null) {
      flush()
      const code: string[] = []
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) code.push(lines[i])
      const cls = fence[1] !== '' ? ` class="language-${fence[1]}"` : ''
      out.push(`<pre><code${cls}>${escapeHtml(code.join('\n'))}</code></pre>`)
      continue
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading != null) {
      flush()
      out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`)
      continue
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); out.push('<hr>'); continue }
    const item = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line)
    if (item != null) {
      const tag = item[1] != null ? 'ul' : 'ol'
      if (para.length > 0 || (list != null && list.tag !== tag)) flush()
      list ??= { tag, items: [] }
      list.items.push(item[3])
      continue
    }
    if (line.trim() === '') { flush(); continue }
    if (list != null && /^\s+\S/.test(line)) { list.items[list.items.length - 1] += ` ${line.trim()}`; continue }
    if (list != null) flush()
    para.push(line.trim())
  }
  flush()
  return out.join('\n')
}
