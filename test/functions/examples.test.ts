import { describe, expect, it } from 'vitest'
import { fakeContext } from './fake-context.ts'
import * as wc from '../../functions/wordcount/wordcount.ts'
import * as fp from '../../functions/fileprocessing/fileprocessing.ts'
import { markdownToHtml } from '../../functions/fileprocessing/markdown.ts'
import { sentimentOf } from '../../functions/fileprocessing/sentiment.ts'
import * as rec from '../../functions/recognizer/recognizer.ts'
import * as mx from '../../functions/matrix/matrix.ts'
import type { Value } from '../../node/values/codec.ts'

describe('wordcount', () => {
  const text = Array.from({ length: 100 }, (_, i) => `the cat sat on line ${i % 7} and the dog's bone`).join('\n')

  it('split emits one chunk per CHUNK_LINES lines, and they add up to the text', async () => {
    const f = fakeContext({ text })
    await f.run(wc.split)
    expect(f.streams.chunks).toHaveLength(Math.ceil(100 / wc.CHUNK_LINES))
    expect((f.streams.chunks as string[]).join('\n')).toBe(text)
  })

  it('split of an empty text gives an empty list', async () => {
    const f = fakeContext({ text: '  \n' })
    const out = await f.run(wc.split)
    expect(out.chunks).toEqual([])
  })

  it('count -> merge gives the word frequencies of the whole text', async () => {
    const s = fakeContext({ text })
    await s.run(wc.split)
    const counts: Value[] = []
    for (const chunk of s.streams.chunks) counts.push((await fakeContext({ chunk }).run(wc.count)).counts)
    const m = await fakeContext({ counts }).run(wc.merge)
    expect(m.total).toBe(100 * 10)
    expect(m.distinct).toBe(7 + 8) // line numbers 0..6 + the, cat, sat, on, line, and, dog's, bone
    expect((m.top as Array<{ word: string, count: number }>).slice(0, 2)).toEqual([{ word: 'the', count: 200 }, { word: 'and', count: 100 }])
    expect(m.top).toHaveLength(10)
  })

  it('counts words named like Object.prototype properties, and splits words as documented', async () => {
    const out = await fakeContext({ chunk: 'constructor Constructor toString' }).run(wc.count)
    expect(out.counts).toEqual({ constructor: 2, tostring: 1 })
    expect(wc.words("__proto__ Hello, WORLD don't")).toEqual(['proto', 'hello', 'world', "don't"])
  })
})

describe('fileprocessing', () => {
  it('converts markdown to HTML', () => {
    const md = [
      '# Title', '', 'Some *em* and **strong** text', 'on two lines with `a<b`.', '',
      '- one', '- two [link](https://x.org)', '', '1. first', '2. second', '', '```js', 'if (a < b) {}', '```', '---', '## Sub ##'
    ].join('\n')
    expect(markdownToHtml(md)).toBe([
      '<h1>Title</h1>',
      '<p>Some <em>em</em> and <strong>strong</strong> text on two lines with <code>a&lt;b</code>.</p>',
      '<ul><li>one</li><li>two <a href="https://x.org">link</a></li></ul>',
      '<ol><li>first</li><li>second</li></ol>',
      '<pre><code class="language-js">if (a &lt; b) {}</code></pre>',
      '<hr>',
      '<h2>Sub</h2>'
    ].join('\n'))
  })

  it('escapes HTML and drops javascript: links', () => {
    expect(markdownToHtml('<script>x</script> [a](javascript:alert)')).toBe('<p>&lt;script&gt;x&lt;/script&gt; a</p>')
  })

  it('scores sentiment with the right sign, negation included', () => {
    expect(sentimentOf('What a great, wonderful day. I love it.').score).toBeGreaterThan(0)
    expect(sentimentOf('This is terrible and the build is broken.').score).toBeLessThan(0)
    expect(sentimentOf('This is not good.').score).toBeLessThan(0)
    expect(sentimentOf('A table and a chair.')).toEqual({ score: 0, label: 'neutral', matched: 0 })
  })

  it('runs start -> conversion || sentiment -> combine', async () => {
    const start = await fakeContext({ document: new TextEncoder().encode('# Review\r\n\r\nA *great* day, not bad.') }).run(fp.start)
    expect(start.title).toBe('Review')
    const conv = await fakeContext({ markdown: start.markdown }).run(fp.conversion)
    const sent = await fakeContext({ markdown: start.markdown }).run(fp.sentiment)
    const out = await fakeContext({ title: start.title, html: conv.html, score: sent.score, label: sent.label }).run(fp.combine)
    expect(out.result).toEqual({ title: 'Review', html: '<h1>Review</h1>\n<p>A <em>great</em> day, not bad.</p>', score: 2.5, label: 'positive' })
  })
})

describe('recognizer', () => {
  async function flow (text: string): Promise<Record<string, Value>> {
    const ex = await fakeContext({ content: text }).run(rec.extract)
    const cl = await fakeContext({ words: ex.words }).run(rec.classify)
    const branch = cl.label === 'flagged'
      ? await fakeContext({ text: ex.text, reasons: cl.reasons }).run(rec.censor)
      : await fakeContext({ text: ex.text }).run(rec.pass)
    const fin = await fakeContext({ text: branch.text, label: cl.label, score: cl.score }).run(rec.finalize)
    return { ...cl, ...branch, ...fin }
  }

  it('flags and censors banned words', async () => {
    const out = await flow('Buy cheap Weapons and a bomb now')
    expect(out.label).toBe('flagged')
    expect(out.reasons).toEqual(['bomb', 'weapons'])
    expect(out.text).toBe('Buy cheap ******* and a **** now')
    expect(out.count).toBe(2)
    expect(out.report).toEqual({ label: 'flagged', score: 5, text: 'Buy cheap ******* and a **** now', length: 32 })
  })

  it('passes a clean text unchanged', async () => {
    const out = await flow('a quiet afternoon with a hack of a cough')
    expect(out.label).toBe('clean') // one weight-1 word stays below FLAG_AT
    expect(out.text).toBe('a quiet afternoon with a hack of a cough')
  })

  it('reads UTF-8 bytes and rejects bytes that are not text', async () => {
    const ok = await fakeContext({ content: new TextEncoder().encode('gun') }).run(rec.extract)
    expect(ok.words).toEqual(['gun'])
    await expect(fakeContext({ content: new Uint8Array([0xff, 0xfe, 0x00]) }).run(rec.extract)).rejects.toThrow()
  })
})

describe('matrix', () => {
  const rand = (n: number, m: number, seed: number): number[][] =>
    Array.from({ length: n }, (_, i) => Array.from({ length: m }, (_, j) => ((i * 31 + j * 17 + seed) % 13) - 6 + 0.25))

  it('block product equals the naive product', async () => {
    const a = rand(11, 7, 1)
    const b = rand(7, 5, 2)
    const s = fakeContext({ a, b })
    await s.run(mx.split)
    expect(s.streams.blocks).toHaveLength(4)
    const parts: Value[] = []
    for (const block of s.streams.blocks) parts.push((await fakeContext({ block, b }).run(mx.compute)).rows)
    const out = await fakeContext({ parts: parts.reverse(), b }).run(mx.merge)
    expect(out.rows).toBe(11)
    expect(out.cols).toBe(5)
    expect(mx.maxAbsDiff(out.product as number[][], mx.multiply(a, b))).toBeLessThan(1e-9)
    // and against an independent triple loop
    const c = a.map((_, i) => b[0].map((_, j) => a[i].reduce((acc, x, k) => acc + x * b[k][j], 0)))
    expect(mx.maxAbsDiff(out.product as number[][], c)).toBeLessThan(1e-9)
  })

  it('rejects shapes that do not match', async () => {
    await expect(fakeContext({ a: [[1, 2]], b: [[1, 2]] }).run(mx.split)).rejects.toMatchObject({ name: 'MatrixShapeError' })
    await expect(fakeContext({ a: [[1, 2], [3]], b: [[1], [2]] }).run(mx.split)).rejects.toMatchObject({ name: 'MatrixShapeError' })
    expect(mx.maxAbsDiff([[1]], [[1, 2]])).toBe(Infinity)
  })
})
