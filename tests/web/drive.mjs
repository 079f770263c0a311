// Drives Debian's chromium (headless, through playwright-core) over an exported tf_cyclegan page and prints what
// it saw as one JSON line: the example translated on load, an image and a non-image uploaded, the other direction.
//   node drive.mjs URL SCREENSHOT.png NOT_AN_IMAGE IMAGE
import {chromium} from 'playwright-core';

const [url, screenshot, notAnImage, image] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--no-first-run', '--disable-quic'],
});
const page = await browser.newPage({viewport: {width: 1100, height: 800}});
// Every wait (navigation and actions too, 30 s by default) gets the same 3 minutes: on 2 busy cores loading the
// page's 20 MB can take longer than playwright's default.
page.setDefaultTimeout(180000);
page.setDefaultNavigationTimeout(180000);
const consoleErrors = [];
page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
page.on('pageerror', (error) => consoleErrors.push(String(error)));
const fetched = {};  // bytes the page fetched, by file name (what a visitor downloads)
page.on('response', async (response) => {
  try {
    fetched[new URL(response.url()).pathname] = (await response.body()).length;
  } catch {}  // a redirect or a response without a body
});
const last = () => page.evaluate(() => window.tfCyclegan.last);
const waitFor = (condition, argument) => page.waitForFunction(condition, argument, {timeout: 180000});
const report = {};
try {
  const started = Date.now();
  await page.goto(url);
  await waitFor(() => document.body.dataset.state === 'ready' || document.body.dataset.state === 'error');
  report.ready_ms = Date.now() - started;
  report.state = await page.evaluate(() => document.body.dataset.state);
  report.status = await page.textContent('#status');
  report.accelerator = await page.evaluate(() => window.tfCyclegan.accelerator);
  report.on_load = await last();
  await page.setInputFiles('#file', notAnImage);
  await waitFor(() => document.getElementById('status').dataset.kind === 'error');
  report.not_an_image = await page.textContent('#status');
  await page.selectOption('#direction', 'b2a');
  await waitFor(() => window.tfCyclegan.last.direction === 'b2a');
  report.b2a = await last();
  await page.setInputFiles('#file', image);
  await waitFor((name) => window.tfCyclegan.last.name === name, image.split('/').pop());
  report.upload = await last();
  report.upload_canvas = await page.evaluate(() => {
    const canvas = document.getElementById('output');
    const alpha = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data.filter((_, i) => i % 4 === 3);
    return {width: canvas.width, height: canvas.height, transparent: alpha.filter((a) => a === 0).length};
  });
  report.download = await page.getAttribute('#download', 'download');
  await page.screenshot({path: screenshot, fullPage: true});
} catch (error) {
  report.error = String(error);
}
report.console_errors = consoleErrors;
report.fetched_bytes = Object.values(fetched).reduce((a, b) => a + b, 0);
report.fetched = fetched;
await browser.close();
console.log(JSON.stringify(report));
