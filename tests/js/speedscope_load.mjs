// Load profile files into the real speedscope app (the static build in the npm package,
// node_modules/speedscope/dist/release) in headless Chromium, from file://, the way speedscope's
// own CLI does it (index.html#localProfilePath=<js calling speedscope.loadFileFromBase64>).
//
// usage: node speedscope_load.mjs --out SHOT_DIR [--view time-ordered|left-heavy|sandwich] FILE...
// Prints one JSON line per file:
//   {file, outcome, title, importer, dialogs, pageErrors, consoleErrors, offHost, text, screenshot}
// outcome: ok (title "<name> - speedscope" and the profile view shown), alert, error (importer
// failed), page-error (imported, then an uncaught exception), not-rendered, timeout.
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {launch, watch, parseArgs, sleep} from './browser.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const DIST = path.join(here, 'node_modules', 'speedscope', 'dist', 'release')

async function loadOne(browser, tmpDir, file, a) {
  const name = path.basename(file)
  const js = path.join(tmpDir, `${name}.js`)
  const b64 = fs.readFileSync(file).toString('base64')
  fs.writeFileSync(js, `speedscope.loadFileFromBase64(${JSON.stringify(name)}, ${JSON.stringify(b64)})`)
  let url = `file://${path.join(DIST, 'index.html')}#localProfilePath=${encodeURIComponent(js)}`
  if (a.view) url += `&view=${a.view}`
  const page = await browser.newPage()
  await page.setViewport({width: 1280, height: 720})
  const rec = await watch(page)
  const t0 = Date.now()
  await page.goto(url, {waitUntil: 'load', timeout: +a.timeout || 30000})
  let outcome = 'timeout', title = ''
  while (Date.now() - t0 < (+a.timeout || 30000)) {
    title = await page.title()
    if (rec.dialogs.length) { outcome = 'alert'; break }
    if (rec.console.some(l => l.startsWith('Failed to load format'))) { outcome = 'error'; break }
    if (title.endsWith(' - speedscope')) { outcome = 'ok'; break }
    await sleep(100)
  }
  const ms = Date.now() - t0
  await sleep(800) // the title is set before the view renders; let it draw (and fail, if it will)
  if (outcome === 'ok' && rec.pageErrors.length) outcome = 'page-error'
  const text = await page.evaluate(() => document.body.innerText.slice(0, 20000))
  if (outcome === 'ok' && (text.includes('Drag and drop a profile') || !text.includes('Time Order'))) {
    outcome = 'not-rendered'
  }
  let screenshot = null
  if (a.out) {
    screenshot = path.join(a.out, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}${a.view ? '.' + a.view : ''}.png`)
    await page.screenshot({path: screenshot})
  }
  await page.close()
  return {
    file: name, outcome, title, ms, screenshot,
    importer: rec.console.filter(l => l.startsWith('Importing') || l.startsWith('Failed')).slice(0, 3),
    dialogs: rec.dialogs, pageErrors: rec.pageErrors, consoleErrors: rec.consoleErrors,
    offHost: rec.offHost, text,
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2), ['out', 'view', 'timeout'])
  if (!a.files.length) {
    console.error('usage: node speedscope_load.mjs --out DIR [--view VIEW] FILE...')
    process.exit(2)
  }
  if (a.out) fs.mkdirSync(a.out, {recursive: true})
  const {browser, close, userDataDir} = await launch()
  try {
    for (const f of a.files) {
      let r
      try { r = await loadOne(browser, userDataDir, path.resolve(f), a) }
      catch (e) { r = {file: path.basename(f), outcome: 'harness-error', error: String(e).slice(0, 500)} }
      console.log(JSON.stringify(r))
    }
  } finally {
    await close()
  }
}

main().catch(e => { console.error(e); process.exit(1) })
