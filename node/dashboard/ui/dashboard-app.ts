import { render } from 'preact'
import { html } from './html.ts'
import { HomePage } from './home.ts'
import { RequestPage } from './request-page.ts'

/** One page for `/` and `/requests/<id>`: the server answers both with the same shell. */
function App () {
  const m = /^\/requests\/([^/]+)\/?$/.exec(location.pathname)
  const body = m != null ? html`<${RequestPage} id=${decodeURIComponent(m[1])} />` : html`<${HomePage} />`
  return html`
    <header>
      <a href="/" class="brand">dflow</a>
      <span class="muted">dashboard of peer <code id="self-peer">${document.body.dataset.peer ?? ''}</code></span>
    </header>
    <main>${body}</main>`
}

const root = document.getElementById('app')
if (root != null) render(html`<${App} />`, root)
