// Saves a screenshot of an exported page once it has translated its first example (for the README).
//   node screenshot.mjs URL OUT.png [EXAMPLE_INDEX]
import {chromium} from 'playwright-core';

const [url, out, example = '0'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({viewport: {width: 1000, height: 640}});
await page.goto(url);
await page.waitForFunction(() => document.body.dataset.state === 'ready', null, {timeout: 180000});
if (example !== '0') {
  await page.click(`#examples button:nth-child(${Number(example) + 1})`);
  await page.waitForFunction((name) => window.tfCyclegan.last.name.endsWith(name), `_${Number(example) + 1}.png`);
}
await page.screenshot({path: out});
await browser.close();
