import ELK from 'elkjs/lib/elk.bundled.js'
import { useEffect, useState } from 'preact/hooks'
import { html } from './html.ts'
import { shortId, type StepView, type WorkflowGraph } from './api.ts'
import type { ElkNode, ElkExtendedEdge } from 'elkjs/lib/elk-api'

const NODE_W = 220
const LINE_H = 15
const MAX_LINES = 8
const elk = new ELK()

type State = StepView['status']

/** A step's colour: failed beats running beats pending; ok only when every instance is. */
function stepState (instances: StepView[]): State | 'idle' {
  if (instances.length === 0) return 'idle'
  for (const s of ['failed', 'running', 'pending', 'skipped'] as const) if (instances.some(i => i.status === s)) return s
  return 'ok'
}

interface Laid { nodes: ElkNode[], edges: ElkExtendedEdge[], width: number, height: number }

function nodeId (name: string): string { return name === 'inputs' || name === 'outputs' ? `io:${name}` : `s:${name}` }

export function DagView ({ graph, steps }: { graph?: WorkflowGraph, steps: StepView[] }) {
  const [laid, setLaid] = useState<Laid>()
  const [error, setError] = useState<string>()
  const byStep = new Map<string, StepView[]>()
  for (const s of steps) byStep.set(s.name, [...(byStep.get(s.name) ?? []), s])
  const lines = (name: string): number => Math.min(MAX_LINES, byStep.get(name)?.length ?? 0)
  // a node grows with its instance lines: lay out again only when a count changes
  const shapeKey = graph === undefined ? '' : graph.steps.map(s => `${s.name}:${lines(s.name)}`).join(',')
  useEffect(() => {
    if (graph === undefined) return
    let stopped = false
    const children: ElkNode[] = [
      ...(graph.inputs.length > 0 ? [{ id: 'io:inputs', width: 120, height: 24 + LINE_H * graph.inputs.length }] : []),
      ...graph.steps.map(s => ({ id: nodeId(s.name), width: NODE_W, height: 30 + LINE_H * Math.max(1, lines(s.name)) })),
      { id: 'io:outputs', width: 120, height: 24 + LINE_H * Math.max(1, Object.keys(graph.outputs).length) }
    ]
    const seen = new Set<string>()
    const edges: ElkExtendedEdge[] = []
    for (const e of graph.edges) {
      const key = `${e.from}->${e.to}`
      if (seen.has(key)) continue
      seen.add(key)
      edges.push({ id: `e${edges.length}`, sources: [nodeId(e.from)], targets: [nodeId(e.to)] })
    }
    const root: ElkNode = {
      id: 'root',
      layoutOptions: { 'elk.algorithm': 'layered', 'elk.direction': 'RIGHT', 'elk.spacing.nodeNode': '24', 'elk.layered.spacing.nodeNodeBetweenLayers': '48', 'elk.edgeRouting': 'POLYLINE' },
      children,
      edges
    }
    elk.layout(root).then((r: ElkNode) => {
      if (!stopped) setLaid({ nodes: r.children ?? [], edges: (r.edges ?? []) as ElkExtendedEdge[], width: r.width ?? 0, height: r.height ?? 0 })
    }, err => { if (!stopped) setError((err as Error).message) })
    return () => { stopped = true }
  }, [graph, shapeKey])

  if (error !== undefined) return html`<p class="error">layout failed: ${error}</p>`
  if (graph === undefined || laid === undefined) return html`<p class="muted">laying out the workflow…</p>`
  return html`
    <svg id="dag" class="dag" width=${laid.width + 8} height=${laid.height + 8} viewBox=${`-4 -4 ${laid.width + 8} ${laid.height + 8}`}>
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" /></marker></defs>
      ${laid.edges.map(e => (e.sections ?? []).map(sec => {
        const pts = [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint]
        return html`<polyline key=${e.id} class="edge" points=${pts.map(p => `${p.x},${p.y}`).join(' ')} marker-end="url(#arrow)" />`
      }))}
      ${laid.nodes.map(n => {
        const x = n.x ?? 0
        const y = n.y ?? 0
        if (n.id.startsWith('io:')) {
          const items = n.id === 'io:inputs' ? graph.inputs : Object.keys(graph.outputs)
          return html`<g key=${n.id} class="node io">
            <rect x=${x} y=${y} width=${n.width} height=${n.height} rx="12" />
            <text x=${x + 10} y=${y + 17} class="title">${n.id.slice(3)}</text>
            ${items.map((it, i) => html`<text x=${x + 10} y=${y + 17 + LINE_H * (i + 1)} class="small">${it}</text>`)}
          </g>`
        }
        const name = n.id.slice(2)
        const inst = byStep.get(name) ?? []
        const state = stepState(inst)
        return html`<g key=${n.id} class=${`node step ${state}`} data-step=${name} data-state=${state}>
          <title>${name}: ${state}</title>
          <rect x=${x} y=${y} width=${n.width} height=${n.height} rx="6" />
          <text x=${x + 10} y=${y + 18} class="title">${name}</text>
          ${inst.length === 0 ? html`<text x=${x + 10} y=${y + 18 + LINE_H} class="small">not yet</text>` : null}
          ${inst.slice(0, MAX_LINES).map((s, i) => html`
            <text x=${x + 10} y=${y + 18 + LINE_H * (i + 1)} class="small" data-peer=${s.peer ?? ''}>
              ${i === MAX_LINES - 1 && inst.length > MAX_LINES ? `+${inst.length - MAX_LINES + 1} more` : `${s.index !== null ? `[${s.index}] ` : ''}${s.status} on ${shortId(s.peer)}`}
              <title>${s.peer ?? 'unclaimed'}</title>
            </text>`)}
        </g>`
      })}
    </svg>`
}
