// Drives the Gatehouse web console in headless Chromium as a person would:
// signs in at the OpenID provider, finds the waiting approval, approves it,
// opens the session replay and steps through it. Screenshots go to
// $SCREENSHOTS. Prints one JSON line with what it saw; exits non-zero (with
// the page's text) on anything unexpected.
//
// Environment: CONSOLE_URL (http://127.0.0.1:PORT), LOGIN (the person),
// EXPECT (text the waiting request shows), SCREENSHOTS (a folder),
// CHROMIUM (the browser binary, default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const need = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const consoleUrl = need('CONSOLE_URL');
const login = need('LOGIN');
const expect = need('EXPECT');
const shots = need('SCREENSHOTS');
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(20000);
const consoleErrors = [];
// Errors on the console's own pages count; the provider's pages are not ours.
const ours = () => page.url().startsWith(consoleUrl);
page.on('console', (m) => { if (m.type() === 'error' && ours()) consoleErrors.push(`${page.url()}: ${m.text()}`); });
page.on('pageerror', (e) => { if (ours()) consoleErrors.push(`${page.url()}: ${e}`); });
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const seen = {};

try {
  // 1. Not signed in: the sign-in page, with one issuer.
  await page.goto(`${consoleUrl}/console/`);
  await page.getByRole('link', { name: /Sign in with/ }).waitFor();
  await shot('01-signin');

  // 2. The provider's own login and consent pages.
  await page.getByRole('link', { name: /Sign in with/ }).click();
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  const consent = page.locator('button[type="submit"]');
  if (await page.locator('input[name="prompt"][value="consent"]').count()) {
    await consent.click();
  }

  // 3. Back in the console, signed in, on the pending approvals.
  await page.waitForURL(`${consoleUrl}/console/**`);
  await page.getByText(`Signed in as ${login}`).waitFor();
  const card = page.locator('article.card', { hasText: expect });
  await card.waitFor();
  seen.approval_text = (await card.innerText()).slice(0, 2000);
  await shot('02-pending-approval');

  // 4. Approve; the status line says so and the card leaves the list.
  await card.getByRole('button', { name: 'Approve' }).click();
  await page.locator('#status', { hasText: /approved/i }).waitFor();
  seen.status = await page.locator('#status').innerText();
  await card.waitFor({ state: 'detached' });
  await shot('03-approved');

  // 5. The decided approval, then its session replay.
  await page.goto(`${consoleUrl}/console/#/approvals?status=approved`);
  const decided = page.locator('article.card', { hasText: expect });
  await decided.waitFor();
  seen.decided_text = (await decided.innerText()).slice(0, 2000);
  await decided.getByRole('link').first().click();
  await page.getByRole('heading', { name: 'Session replay' }).waitFor();
  await page.locator('ol.steps li').first().waitFor();
  seen.steps = await page.locator('ol.steps li').allInnerTexts();
  await shot('04-replay-first-step');
  const next = page.getByRole('button', { name: /Next/ });
  while (await next.isEnabled()) await next.click();
  seen.last_step = await page.locator('.step-detail').innerText();
  seen.counter = await page.locator('.stepper span').innerText();
  await shot('05-replay-last-step');

  // 6. Sessions list and policies render too.
  await page.getByRole('link', { name: 'Sessions' }).click();
  await page.getByRole('heading', { name: 'Sessions' }).waitFor();
  await page.locator('table tbody tr').first().waitFor();
  seen.session_rows = await page.locator('table tbody tr').count();
  await shot('06-sessions');
  await page.getByRole('link', { name: 'Policies' }).click();
  await page.getByRole('heading', { name: 'Policies' }).waitFor();
  await page.locator('table tbody tr').first().waitFor();
  seen.policies = await page.locator('table tbody tr').allInnerTexts();
  await shot('07-policies');

  seen.console_errors = consoleErrors;
  console.log(JSON.stringify(seen));
  await browser.close();
} catch (e) {
  await shot('99-failure').catch(() => {});
  const text = await page.locator('body').innerText().catch(() => '');
  console.error(`console test failed at ${page.url()}: ${e.message}\n--- page text ---\n${text}\n--- browser errors ---\n${consoleErrors.join('\n')}`);
  await browser.close();
  process.exit(1);
}
