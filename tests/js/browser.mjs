// Shared by the consumer-check drivers: launch headless Chromium (Debian's /usr/bin/chromium) with
// puppeteer-core, offline, in a fresh profile directory; record every request a page makes.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import puppeteer from 'puppeteer-core'

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

export async function launch(extraArgs = []) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpprof-chromium-'))
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    protocolTimeout: 120000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', `--user-data-dir=${userDataDir}`,
      ...extraArgs],
  })
  const close = async () => {
    await browser.close()
    fs.rmSync(userDataDir, {recursive: true, force: true})
  }
  return {browser, close, userDataDir}
}

// Watch a page: console messages, uncaught errors, dialogs, and every request. Requests to anything
// but file:, data:, blob:, about: are aborted (a page must never leave the machine) and listed.
export async function watch(page) {
  const rec = {console: [], consoleErrors: [], pageErrors: [], dialogs: [], requests: [], offHost: []}
  page.on('console', m => {
    rec.console.push(m.text().slice(0, 300))
    if (m.type() === 'error') rec.consoleErrors.push(m.text().slice(0, 300))
  })
  page.on('pageerror', e => rec.pageErrors.push(String(e).slice(0, 300)))
  page.on('dialog', async d => { rec.dialogs.push(d.message().slice(0, 300)); await d.dismiss() })
  await page.setRequestInterception(true)
  page.on('request', r => {
    const u = r.url()
    rec.requests.push(u.slice(0, 300))
    if (/^(file|data|blob|about):/.test(u)) r.continue()
    else { rec.offHost.push(u.slice(0, 300)); r.abort() }
  })
  return rec
}

export function parseArgs(argv, flags) {
  const a = {files: []}
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]
    if (k.startsWith('--') && flags.includes(k.slice(2))) a[k.slice(2)] = argv[++i]
    else a.files.push(k)
  }
  return a
}

export const sleep = ms => new Promise(r => setTimeout(r, ms))
