// Opens a review page in headless Chromium and checks it as a reviewer would use it.
//
//   node tests/browser/review.mjs PAGE.html EXPECT.json SCREENSHOT.png [--timing] [--dark] [--width N] [--all-shots]
//
// playwright-core is found in REJUDGE_BROWSER_DIR (the folder scripts/chromium.sh prints), else in
// the folders of NODE_PATH, else in ${REJUDGE_CACHE:-~/.cache/rejudge}/browser. ESM imports ignore
// NODE_PATH, hence the explicit lookup. The browser is /usr/bin/chromium unless REJUDGE_CHROMIUM
// names another.
//
// Fails on any request that leaves file:, data: or about: (all are aborted, and counted), on any
// console error or uncaught page error, on a row count that differs from EXPECT.json, and on any
// sign that text from the data ran as markup. Prints one JSON line with what it measured.

import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const usage = 'usage: node tests/browser/review.mjs PAGE.html EXPECT.json SCREENSHOT.png [--timing] [--dark] [--width N] [--all-shots]';

function die(message) {
  process.stderr.write(`review.mjs: ${message}\n`);
  process.exit(2);
}

const positional = [];
const opts = { timing: false, dark: false, width: 1280, allShots: false };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--timing') opts.timing = true;
  else if (a === '--dark') opts.dark = true;
  else if (a === '--all-shots') opts.allShots = true;
  else if (a === '--width') opts.width = Number(process.argv[++i]);
  else if (a.startsWith('--')) die(`unknown option ${a}\n${usage}`);
  else positional.push(a);
}
if (positional.length !== 3 || !(opts.width > 0)) die(usage);
const [pagePath, expectPath, shotPath] = positional.map((p) => resolve(p));
if (!existsSync(pagePath)) die(`no page at ${pagePath}`);
const expect = JSON.parse(readFileSync(expectPath, 'utf8'));

function loadPlaywright() {
  const candidates = [];
  if (process.env.REJUDGE_BROWSER_DIR) candidates.push(process.env.REJUDGE_BROWSER_DIR);
  for (const p of (process.env.NODE_PATH || '').split(':').filter(Boolean)) {
    candidates.push(basename(p) === 'node_modules' ? dirname(p) : p);
  }
  candidates.push(join(process.env.REJUDGE_CACHE || join(homedir(), '.cache', 'rejudge'), 'browser'));
  for (const dir of candidates) {
    if (existsSync(join(dir, 'node_modules', 'playwright-core', 'package.json'))) {
      return createRequire(join(resolve(dir), 'package.json'))('playwright-core');
    }
  }
  die(`playwright-core not found in ${candidates.join(', ')}; run scripts/chromium.sh and pass its last line as REJUDGE_BROWSER_DIR`);
}

const { chromium } = loadPlaywright();
const executablePath = process.env.REJUDGE_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(executablePath)) die(`no browser at ${executablePath}; run scripts/chromium.sh`);

const failures = [];
const check = (ok, message) => { if (!ok) failures.push(message); };
const measured = { requests_blocked: 0, console_errors: 0, page_errors: 0 };
const blocked = [], consoleErrors = [], pageErrors = [];

// The page must be usable with no network at all, so anything but the page's own file is refused.
const local = (url) => /^(file|data|about|blob):/i.test(url);

const profile = mkdtempSync(join(tmpdir(), 'rejudge-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
    viewport: { width: opts.width, height: 900 },
    colorScheme: opts.dark ? 'dark' : 'light',
    reducedMotion: 'reduce',
    offline: true,
  });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (local(url)) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('request', (req) => {
    // Routes do not see everything (service workers, some preloads); count those here too.
    if (!local(req.url()) && !blocked.includes(req.url())) blocked.push(req.url());
  });

  const page = context.pages()[0] || (await context.newPage());
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => pageErrors.push(String(err && err.stack || err)));
  page.on('websocket', (ws) => blocked.push(ws.url()));

  // The page marks itself ready when its script has rendered the first view; a script that threw
  // never will, so waiting stops early once it has reported an error.
  const ready = async () => {
    const start = Date.now();
    for (;;) {
      if (await page.evaluate(() => document.documentElement.dataset.ready === '1')) return;
      const waited = Date.now() - start;
      if (pageErrors.length || (consoleErrors.length && waited > 2000) || waited > 30000) {
        throw new Error(`the page's script did not finish its first render (html[data-ready] unset after ${waited} ms)`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const url = pathToFileURL(pagePath).href;
  const started = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  await ready();
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0))));
  const firstRenderWall = Date.now() - started;

  const state = () => page.evaluate(() => {
    const cards = [...document.querySelectorAll('#rows .card')];
    return {
      count: Number(document.getElementById('count').dataset.count),
      cards: cards.length,
      cards_visible: cards.filter((c) => c.getClientRects().length > 0).length,
      page_size: Number(document.getElementById('rows').dataset.pageSize),
      more_hidden: document.getElementById('more').hidden,
    };
  });
  // A view is right when the counter says N and the first page of them is on screen as cards.
  const checkView = (name, got, want) => {
    check(got.count === want, `${name}: the page counts ${got.count} rows, expected ${want}`);
    const onPage = Math.min(want, got.page_size);
    check(got.cards === onPage && got.cards_visible === onPage,
      `${name}: ${got.cards} cards (${got.cards_visible} visible) on the page, expected ${onPage}`);
    check(got.more_hidden === (want <= got.page_size), `${name}: the "show more" button is ${got.more_hidden ? 'hidden' : 'shown'}`);
  };
  const shot = async (suffix) => {
    const path = suffix ? join(dirname(shotPath), `${basename(shotPath, extname(shotPath))}-${suffix}${extname(shotPath)}`) : shotPath;
    // From the top, so that the sticky filter bar sits above the first card, as on opening. Cards
    // off screen are skipped by the browser (content-visibility) until scrolled to, which a
    // full-page capture never does, so they are rendered for it; set through CSSOM, which the
    // page's policy allows, unlike a <style> element.
    await page.evaluate(() => {
      window.scrollTo(0, 0);
      if (document.activeElement) document.activeElement.blur();
      for (const c of document.querySelectorAll('#rows .card')) c.style.contentVisibility = 'visible';
      return new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    });
    await page.screenshot({ path, fullPage: true, caret: 'initial', animations: 'allow' });
    await page.evaluate(() => { for (const c of document.querySelectorAll('#rows .card')) c.style.contentVisibility = ''; });
  };

  // The default view.
  const initial = await state();
  measured.default_visible = initial.count;
  measured.cards = initial.cards;
  checkView('default view', initial, expect.default_visible);
  if (expect.rows_in_file != null) {
    const total = await page.evaluate(() => document.getElementById('count').textContent);
    check(total.includes(` of ${Number(expect.rows_in_file).toLocaleString('en-US')} row`), `the counter reads "${total}", expected ${expect.rows_in_file} rows in the file`);
  }
  if (expect.notices != null) {
    const notices = await page.locator('#notices .notice').count();
    check(notices === expect.notices, `${notices} notices under the header, expected ${expect.notices}`);
  }
  for (const text of expect.literal_texts || []) {
    const found = await page.evaluate((t) => document.getElementById('rows').textContent.includes(t), text);
    check(found, `the literal text ${JSON.stringify(text)} is not shown as text`);
  }

  // Data text must stay text: nothing from it may become an element, a handler or a link.
  const probe = async (when) => {
    const p = await page.evaluate(() => ({
      pwned: typeof window.__pwned !== 'undefined',
      images: document.images.length,
      scripts: document.scripts.length,
      links: document.querySelectorAll('a, iframe, object, embed, form, svg, math').length,
      handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => /^on/i.test(a.name))).length,
    }));
    check(!p.pwned, `${when}: window.__pwned was set: text from the data ran as script`);
    check(p.images === 0, `${when}: ${p.images} <img> elements exist; the page creates none`);
    check(p.scripts === 2, `${when}: ${p.scripts} <script> elements exist, expected the page's own 2`);
    check(p.links === 0, `${when}: ${p.links} link/embed/form/svg elements exist; the page creates none`);
    check(p.handlers === 0, `${when}: ${p.handlers} elements carry inline event handlers`);
  };
  await probe('default view');

  // A long text opens and closes with its own button.
  const more = page.locator('#rows .card button.more').first();
  if (await more.count()) {
    const box = more.locator('xpath=preceding-sibling::div[1]');
    const before = (await box.textContent()).length;
    await more.click();
    const after = (await box.textContent()).length;
    check(after > before && (await more.getAttribute('aria-expanded')) === 'true', 'a long text did not open with "Show more"');
    await more.click();
    check((await box.textContent()).length === before, 'a long text did not close again');
    measured.long_text_chars = after;
  }

  // Keyboard: "/" focuses the search box; a toggle works with the space bar.
  await page.locator('body').press('/');
  check(await page.evaluate(() => document.activeElement && document.activeElement.id === 'q'), '"/" did not focus the search box');
  await page.locator('body').press('Escape');
  const firstToggle = page.locator('#toggles button').first();
  await firstToggle.focus();
  const pressed = await firstToggle.getAttribute('aria-pressed');
  await page.keyboard.press('Space');
  check((await firstToggle.getAttribute('aria-pressed')) !== pressed, 'the space bar did not flip a focused outcome toggle');
  await page.keyboard.press('Space');
  check((await firstToggle.getAttribute('aria-pressed')) === pressed, 'the space bar did not flip the toggle back');

  await shot('');

  // One outcome toggle.
  const toggleName = expect.after_toggle && expect.after_toggle.outcome;
  if (toggleName) {
    const toggle = page.locator(`#toggles button[data-outcome="${toggleName}"]`);
    check(await toggle.count() === 1, `no toggle for the outcome ${toggleName}`);
    await toggle.click();
    const got = await state();
    measured.after_toggle = { outcome: toggleName, visible: got.count };
    checkView(`after toggling ${toggleName}`, got, expect.after_toggle.visible);
    const outcomes = await page.evaluate(() => [...new Set([...document.querySelectorAll('#rows .card')].map((c) => c.dataset.outcome))]);
    check(outcomes.includes(toggleName) || expect.after_toggle.visible === expect.default_visible,
      `after toggling ${toggleName}: no ${toggleName} card is on the page`);
    // Paging: the next page of cards comes with the button.
    if (got.count > got.page_size) {
      await page.locator('#more').click();
      const next = await state();
      check(next.cards === Math.min(got.count, 2 * got.page_size), `"show more" left ${next.cards} cards on the page`);
      measured.after_more = next.cards;
    }
    if (opts.allShots) await shot('toggle');
  }

  // A search, typed as a person would (the page waits for a pause in typing).
  if (expect.search) {
    const box = page.locator('#q');
    await box.fill(expect.search.text);
    await page.waitForFunction((t) => new URLSearchParams(location.hash.slice(1)).get('q') === t, expect.search.text, { timeout: 5000 });
    const got = await state();
    measured.search = { text: expect.search.text, visible: got.count };
    checkView(`after searching "${expect.search.text}"`, got, expect.search.visible);
    await probe('after searching');
    if (opts.allShots) await shot('search');

    // The URL fragment reproduces the view after a reload.
    await page.reload({ waitUntil: 'load' });
    await ready();
    const again = await state();
    measured.reloaded = again.count;
    check(again.count === got.count, `reloading with ${await page.evaluate(() => location.hash)} shows ${again.count} rows, expected ${got.count}`);
    check((await box.inputValue()) === expect.search.text, 'the search text did not survive a reload');
  }

  if (opts.timing) {
    // Times are taken inside the page, to the next painted frame, so they leave out the harness's
    // own round trips.
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'load' });
    await ready();
    const nav = await page.evaluate(() => {
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const n = performance.getEntriesByType('navigation')[0];
      return { fcp: paint ? paint.startTime : null, load: n ? n.loadEventEnd : null };
    });
    const wall = Date.now() - t0;
    const timed = (action) => page.evaluate((a) => new Promise((done) => {
      const start = performance.now();
      if (a.kind === 'click') document.querySelector(a.selector).click();
      else {
        const q = document.getElementById('q');
        q.value = a.text;
        q.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
      }
      requestAnimationFrame(() => setTimeout(() => done(performance.now() - start), 0));
    }), action);
    const round = (x) => (x == null ? null : Math.round(x));
    measured.timing = {
      rows: await page.evaluate(() => document.getElementById('count').textContent),
      first_contentful_paint_ms: round(nav.fcp),
      load_event_ms: round(nav.load),
      first_render_wall_ms: wall,
      first_open_wall_ms: firstRenderWall,
      toggle_kept_on_ms: round(await timed({ kind: 'click', selector: '#toggles button[data-outcome="kept"]' })),
      toggle_kept_off_ms: round(await timed({ kind: 'click', selector: '#toggles button[data-outcome="kept"]' })),
      first_search_ms: round(await timed({ kind: 'search', text: 'zebra' })),
      second_search_ms: round(await timed({ kind: 'search', text: 'river' })),
      clear_search_ms: round(await timed({ kind: 'search', text: '' })),
      show_more_ms: round(await timed({ kind: 'click', selector: '#more' })),
      search_debounce_ms: 150,
    };
  }
} catch (err) {
  failures.push(`the browser run stopped: ${err && err.message || err}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

measured.requests_blocked = blocked.length;
measured.console_errors = consoleErrors.length;
measured.page_errors = pageErrors.length;
check(blocked.length === 0, `${blocked.length} requests left the disk: ${blocked.slice(0, 5).join(', ')}`);
check(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
check(pageErrors.length === 0, `page errors: ${pageErrors.slice(0, 5).join(' | ')}`);

process.stdout.write(JSON.stringify({ ok: failures.length === 0, ...measured, screenshot: shotPath }) + '\n');
if (failures.length) {
  process.stderr.write(`review.mjs: ${failures.length} check(s) failed:\n${failures.map((f) => `  - ${f}`).join('\n')}\n`);
  process.exit(1);
}
