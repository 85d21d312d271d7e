import type { StepContext } from 'dflow'
import { markdownToHtml } from './markdown.ts'
import { sentimentOf } from './sentiment.ts'

export type Result = { title: string | null, html: string, score: number, label: string }

export async function start (ctx: StepContext): Promise<{ markdown: string, title: string | null }> {
  const doc = await ctx.input<string | Uint8Array>('document')
  const text = typeof doc === 'string' ? doc : new TextDecoder('utf-8', { fatal: true }).decode(doc)
  const markdown = text.replace(/\r\n?/g, '\n')
  const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/m.exec(markdown)
  return { markdown, title: heading?.[1] ?? null }
}

export async function conversion (ctx: StepContext): Promise<{ html: string }> {
  return { html: markdownToHtml(await ctx.input<string>('markdown')) }
}

export async function sentiment (ctx: StepContext): Promise<{ score: number, label: string }> {
  const { score, label } = sentimentOf(await ctx.input<string>('markdown'))
  return { score, label }
}

export async function combine (ctx: StepContext): Promise<{ result: Result }> {
  const [title, html, score, label] = await Promise.all([
    ctx.input<string | null>('title'), ctx.input<string>('html'), ctx.input<number>('score'), ctx.input<string>('label')
  ])
  return { result: { title, html, score, label } }
}
