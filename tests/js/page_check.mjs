// Open a local HTML file from file:// in headless Chromium, run a list of steps against it as a
// person would (real mouse clicks and typing), and report what the page did.
//
// usage: node page_check.mjs --steps STEPS.json [--width 1280] [--height 800] FILE.html
// STEPS.json is a list; each step is one of
//   {"op": "eval", "js": "expression"}                  -> its JSON-able value
//   {"op": "click_text", "text": "frame name"}          -> clicks the middle of the first .fg-box
//                                                          whose text is exactly that
//   {"op": "hover_text", "text": "frame name"}          -> moves the mouse over it
//   {"op": "type", "selector": "css", "text": "..."}    -> focuses, clears and types
//   {"op": "select", "selector": "css", "value": "1"}
//   {"op": "press", "key": "Escape"}
//   {"op": "wait", "ms": 200}
//   {"op": "screenshot", "path": "/abs/file.png", "full_page": true}
// Any step may carry "frame": 1 to run inside the page's first child frame (an <iframe srcdoc>).
// Prints one JSON line: {title, results, consoleErrors, pageErrors, dialogs, requests, offHost, ms}.
import fs from 'node:fs'
import path from 'node:path'
import {launch, watch, parseArgs, sleep} from './browser.mjs'

async function target(page, step) {
  if (!step.frame) return page
  const frames = page.mainFrame().childFrames()
  if (!frames[step.frame - 1]) throw new Error(`no child frame ${step.frame}`)
  return frames[step.frame - 1]
}

async function boxCentre(ctx, text) {
  return ctx.evaluate(t => {
    const box = Array.from(document.querySelectorAll('.fg-box')).find(b => b.textContent === t)
    if (!box) return null
    box.scrollIntoView({block: 'center'})
    const r = box.getBoundingClientRect()
    return {x: r.left + Math.min(r.width / 2, 40), y: r.top + r.height / 2}
  }, text)
}

async function frameOffset(page, step) {
  if (!step.frame) return {x: 0, y: 0}
  return page.evaluate(i => {
    const r = document.querySelectorAll('iframe')[i - 1].getBoundingClientRect()
    return {x: r.left, y: r.top}
  }, step.frame)
}

async function run(page, step) {
  const ctx = await target(page, step)
  switch (step.op) {
    case 'eval': return ctx.evaluate(step.js)
    case 'click_text':
    case 'hover_text': {
      const c = await boxCentre(ctx, step.text)
      if (!c) return {error: `no box with text ${JSON.stringify(step.text)}`}
      const off = await frameOffset(page, step)
      if (step.op === 'click_text') await page.mouse.click(c.x + off.x, c.y + off.y)
      else await page.mouse.move(c.x + off.x, c.y + off.y)
      await sleep(100)
      return {ok: true}
    }
    case 'type': {
      await ctx.focus(step.selector)
      await ctx.evaluate(s => {   // clear it as a person would (select all, delete): an input event
        const el = document.querySelector(s)
        el.value = ''
        el.dispatchEvent(new Event('input', {bubbles: true}))
      }, step.selector)
      await page.keyboard.type(step.text)
      await sleep(100)
      return {ok: true}
    }
    case 'select': return ctx.select(step.selector, step.value)
    case 'press': await page.keyboard.press(step.key); await sleep(100); return {ok: true}
    case 'wait': await sleep(step.ms || 100); return {ok: true}
    case 'screenshot': await page.screenshot({path: step.path, fullPage: !!step.full_page}); return {ok: true}
    default: return {error: `unknown op ${step.op}`}
  }
}

async function main() {
  const a = parseArgs(process.argv.slice(2), ['steps', 'width', 'height'])
  if (a.files.length !== 1) {
    console.error('usage: node page_check.mjs --steps STEPS.json FILE.html')
    process.exit(2)
  }
  const steps = a.steps ? JSON.parse(fs.readFileSync(a.steps, 'utf8')) : []
  const {browser, close} = await launch()
  try {
    const page = await browser.newPage()
    await page.setViewport({width: +a.width || 1280, height: +a.height || 800})
    const rec = await watch(page)
    const t0 = Date.now()
    await page.goto('file://' + path.resolve(a.files[0]), {waitUntil: 'load', timeout: 120000})
    await sleep(300)
    const results = []
    for (const step of steps) {
      try { results.push(await run(page, step)) }
      catch (e) { results.push({error: String(e).slice(0, 500)}) }
    }
    console.log(JSON.stringify({
      title: await page.title(), results, ms: Date.now() - t0,
      consoleErrors: rec.consoleErrors, pageErrors: rec.pageErrors, dialogs: rec.dialogs,
      requests: rec.requests, offHost: rec.offHost,
    }))
  } finally {
    await close()
  }
}

main().catch(e => { console.error(e); process.exit(1) })
