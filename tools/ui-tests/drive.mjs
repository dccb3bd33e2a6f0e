// Drives the medsec dashboard in Debian's Chromium through playwright-core and reports what it
// saw as JSON on stdout; the Rust test decides pass or fail. Usage:
//   node drive.mjs <scenario.json>
// The scenario names the base URL, the users, the device to revoke, where to put screenshots.
import { readFileSync } from 'node:fs'
import { chromium } from 'playwright-core'

const sc = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const axeSource = readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8')
const out = { steps: [], axe: {}, errors: [] }

const browser = await chromium.launch({
  executablePath: sc.chromium ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // playwright-core starts every launch with a fresh temporary --user-data-dir of its own
  // (it refuses the flag in args), which is the fresh profile the tests need.
})

async function session(user) {
  // bypassCSP only lets the test inject axe-core; the pages themselves carry no script.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true, viewport: sc.viewport ?? { width: 1280, height: 900 } })
  const page = await ctx.newPage()
  page.on('pageerror', e => out.errors.push(`${user.name}: ${e.message}`))
  await page.goto(`${sc.base}/ui/login`)
  await page.getByLabel('Username').fill(user.name)
  await page.getByLabel('Password').fill(user.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.waitForURL(`${sc.base}/ui/`)
  return { ctx, page }
}

async function axe(page, name) {
  await page.addScriptTag({ content: axeSource })
  const r = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }))
  out.axe[name] = r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))
}

try {
  // The operator: find the device, revoke its certificate, triage a finding, pause a rollout.
  const op = await session(sc.operator)
  const page = op.page
  await page.getByLabel('Serial contains').fill(sc.serial)
  await page.getByRole('button', { name: 'Filter' }).click()
  const link = page.getByRole('link', { name: new RegExp(sc.serial) })
  out.steps.push({ found_device: await link.count() })
  await link.first().click()
  await page.screenshot({ path: `${sc.shots}/device.png`, fullPage: true })
  await axe(page, 'device')
  await page.getByLabel('Reason').first().selectOption('keyCompromise')
  await page.getByRole('button', { name: 'Revoke', exact: true }).first().click()
  out.steps.push({ after_revoke: await page.locator('.notice').innerText() })
  for (const [name, path] of [['fleet', '/ui/'], ['pki', '/ui/pki'], ['vulns', '/ui/vulns'], ['updates', '/ui/updates'], ['risk', '/ui/risk'], ['incidents', '/ui/incidents'], ['audit', '/ui/audit'], ['fleet-risk', '/ui/fleet-risk'], ['docs', '/ui/docs'], ['cvd', '/ui/cvd']]) {
    await page.goto(`${sc.base}${path}`)
    await page.screenshot({ path: `${sc.shots}/${name}.png`, fullPage: true })
    await axe(page, name)
  }
  if (sc.triage) {
    await page.goto(`${sc.base}/ui/vulns`)
    // not_affected without a justification: the error appears beside that field.
    const bad = page.locator('tr', { hasText: sc.triage.vuln }).first()
    await bad.getByLabel('State').selectOption('not_affected')
    await bad.getByLabel('Reason').fill('no justification given')
    await bad.getByRole('button', { name: 'Record' }).click()
    await page.waitForURL(/invalid=/)
    const just = page.locator('tr', { hasText: sc.triage.vuln }).first().getByLabel('Justification')
    const described = await just.getAttribute('aria-describedby')
    out.steps.push({ triage_error: {
      invalid: await just.getAttribute('aria-invalid'),
      beside: described ? await page.locator(`#${described}`).innerText() : null,
      summary: await page.locator('.error[role=alert]').first().innerText(),
    } })
    await page.screenshot({ path: `${sc.shots}/vulns-error.png`, fullPage: true })
    await axe(page, 'vulns-error')
    const row = page.locator('tr', { hasText: sc.triage.vuln }).first()
    await row.getByLabel('State').selectOption('not_affected')
    await row.getByLabel('Justification').selectOption('vulnerable_code_not_in_execute_path')
    await row.getByLabel('Reason').fill('not reachable in the pump build')
    await row.getByRole('button', { name: 'Record' }).click()
    out.steps.push({ after_triage: await page.locator('.notice').innerText() })
  }
  if (sc.rollout) {
    await page.goto(`${sc.base}/ui/updates`)
    await page.locator(`#rollout-${sc.rollout}`).getByRole('button', { name: 'Pause' }).click()
    out.steps.push({ after_pause: await page.locator('.notice').innerText() })
  }
  // Tablet width: the fleet page still lays out (no horizontal scroll of the page body).
  await page.setViewportSize({ width: 768, height: 1024 })
  await page.goto(`${sc.base}/ui/`)
  out.steps.push({ tablet_overflow: await page.evaluate(() => document.body.scrollWidth > window.innerWidth + 1) })
  await page.screenshot({ path: `${sc.shots}/fleet-tablet.png`, fullPage: true })
  // Keyboard: the skip link is the first tab stop and leads to the content.
  await page.keyboard.press('Tab')
  out.steps.push({ first_tab: await page.evaluate(() => document.activeElement?.textContent?.trim()) })

  // The auditor: sees no action buttons; a forged POST with its own session and token fails.
  const au = await session(sc.auditor)
  await au.page.goto(`${sc.base}/ui/pki`)
  out.steps.push({ auditor_revoke_buttons: await au.page.getByRole('button', { name: 'Revoke', exact: true }).count() })
  const token = await au.page.locator('input[name=csrf]').first().inputValue()
  const forged = await au.page.evaluate(async ([url, token]) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${encodeURIComponent(token)}&reason=keyCompromise` })
    return r.status
  }, [`${sc.base}/ui/pki/certs/${sc.other_serial}/revoke`, token])
  out.steps.push({ auditor_forged_post: forged })
  // Without the token (CSRF), even the operator's session cannot act.
  const noCsrf = await page.evaluate(async (url) => {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'reason=keyCompromise' })
    return r.status
  }, `${sc.base}/ui/pki/certs/${sc.other_serial}/revoke`)
  out.steps.push({ operator_without_csrf: noCsrf })
} catch (e) {
  out.errors.push(String(e?.stack ?? e))
} finally {
  await browser.close()
}
console.log(JSON.stringify(out))
