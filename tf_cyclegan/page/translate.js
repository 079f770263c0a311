// tf_cyclegan's browser page: translate an image with the exported generators (LiteRT.js, WebGPU or WASM).
// The model takes [1, size, size, channels] floats in [-1, 1]; any image is resized to that size, composited
// over the run's background, translated, resized back to its own size and given its own alpha again.
import {Tensor, isWebGPUSupported, loadAndCompile, loadLiteRt} from '@litertjs/core';

// LiteRT's WASM runtime prints its own INFO/WARNING log lines through console.error: show them as what they are.
const consoleError = console.error.bind(console);
console.error = (...args) => (/^(INFO|WARNING): /.test(String(args[0])) ? console.debug : consoleError)(...args);

const $ = (id) => document.getElementById(id);
const BACKGROUNDS = {white: [255, 255, 255], black: [0, 0, 0], gray: [128, 128, 128]};
const state = {manifest: null, models: {}, accelerator: 'wasm', last: null};
window.tfCyclegan = state;  // read by the browser test: the last model input and output

function say(text, kind = 'info') {
  const status = $('status');
  status.textContent = text;
  status.dataset.kind = kind;
}

function background(text) {
  return BACKGROUNDS[text] || text.split(',').map(Number);
}

async function model(direction) {
  if (!state.models[direction]) {
    const url = new URL(state.manifest.directions[direction].model, location.href).href;
    try {
      state.models[direction] = await loadAndCompile(url, {accelerator: state.accelerator});
    } catch (error) {
      if (state.accelerator === 'wasm') throw error;
      state.accelerator = 'wasm';  // WebGPU could not take this model: the CPU path always can
      state.models[direction] = await loadAndCompile(url, {accelerator: 'wasm'});
    }
  }
  return state.models[direction];
}

function pixels(bitmap, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.drawImage(bitmap, 0, 0, width, height);
  return context.getImageData(0, 0, width, height);
}

function modelInput(image, channels) {
  const [r0, g0, b0] = background(state.manifest.background);
  const data = image.data, count = image.width * image.height;
  const input = new Float32Array(count * channels);
  for (let i = 0; i < count; i++) {
    const a = data[4 * i + 3] / 255;
    const rgb = [data[4 * i] * a + r0 * (1 - a), data[4 * i + 1] * a + g0 * (1 - a), data[4 * i + 2] * a + b0 * (1 - a)];
    if (channels === 1) {
      input[i] = (0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 127.5 - 1;
    } else {
      for (let c = 0; c < 3; c++) input[3 * i + c] = rgb[c] / 127.5 - 1;
    }
  }
  return input;
}

function toImage(output, size, channels) {
  const image = new ImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) {
      const value = output[channels * i + (channels === 1 ? 0 : c)];
      image.data[4 * i + c] = Math.round((Math.min(Math.max(value, -1), 1) + 1) * 127.5);
    }
    image.data[4 * i + 3] = 255;
  }
  return image;
}

async function run(direction, input) {
  const {size} = state.manifest, channels = state.manifest.directions[direction].input_channels;
  const compiled = await model(direction);
  let tensor = new Tensor(input, [1, size, size, channels]);
  if (state.accelerator !== 'wasm') tensor = await tensor.moveTo(state.accelerator);
  const started = performance.now();
  const results = await compiled.run(tensor);
  const host = results[0].accelerator === 'wasm' ? results[0] : await results[0].moveTo('wasm');
  const output = host.toTypedArray().slice();
  const milliseconds = performance.now() - started;
  tensor.delete();
  host.delete();
  return {output, milliseconds};
}

function show(canvasId, width, height, draw) {
  const canvas = $(canvasId);
  canvas.width = width;
  canvas.height = height;
  draw(canvas.getContext('2d'));
  return canvas;
}

async function translate(bitmap, name) {
  const direction = $('direction').value, spec = state.manifest.directions[direction], {size} = state.manifest;
  const {width, height} = bitmap;
  const original = pixels(bitmap, width, height);
  const input = modelInput(pixels(bitmap, size, size), spec.input_channels);
  const {output, milliseconds} = await run(direction, input);
  state.last = {direction, name, input: Array.from(input), output: Array.from(output), milliseconds};
  show('input', width, height, (context) => context.putImageData(original, 0, 0));
  const small = new OffscreenCanvas(size, size);
  small.getContext('2d').putImageData(toImage(output, size, spec.output_channels), 0, 0);
  const canvas = show('output', width, height, (context) => {
    context.drawImage(small, 0, 0, width, height);
    const result = context.getImageData(0, 0, width, height);
    for (let i = 3; i < result.data.length; i += 4) result.data[i] = original.data[i];  // the input's own alpha
    context.putImageData(result, 0, 0);
  });
  $('input-caption').textContent = `${name} (${width}×${height})`;
  $('output-caption').textContent = `${direction} translation`;
  say(`${direction}: ${milliseconds.toFixed(0)} ms on ${state.accelerator} at ${size}×${size}`);
  canvas.toBlob((blob) => {
    const link = $('download');
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = `${name.replace(/\.[^.]*$/, '')}_${direction}.png`;
    link.hidden = false;
  }, 'image/png');
  document.body.dataset.state = 'ready';
}

async function translateFile(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch (error) {
    say(`${file.name} is not an image this browser can read`, 'error');
    return;
  }
  await translate(bitmap, file.name);
}

async function translateUrl(url) {
  const blob = await (await fetch(url)).blob();
  await translate(await createImageBitmap(blob), url.split('/').pop());
}

function showExamples() {
  const examples = $('examples');
  examples.replaceChildren();
  for (const url of state.manifest.directions[$('direction').value].examples) {
    const button = document.createElement('button');
    button.title = url.split('/').pop();
    button.innerHTML = `<img alt="${button.title}" src="${url}">`;
    button.addEventListener('click', () => guarded(() => translateUrl(url)));
    examples.append(button);
  }
}

async function guarded(action) {
  try {
    await action();
  } catch (error) {
    say(`error: ${error.message}`, 'error');
    document.body.dataset.state = 'error';
  }
}

function wire() {
  const drop = $('drop');
  $('file').addEventListener('change', (event) => event.target.files[0] && guarded(() => translateFile(event.target.files[0])));
  drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('over');
    if (event.dataTransfer.files[0]) guarded(() => translateFile(event.dataTransfer.files[0]));
  });
  $('direction').addEventListener('change', () => {
    showExamples();
    guarded(() => translateUrl(state.manifest.directions[$('direction').value].examples[0]));
  });
}

async function main() {
  state.manifest = await (await fetch('manifest.json')).json();
  const {name, directions} = state.manifest;
  document.title = `${name} — tf_cyclegan`;
  $('title').textContent = `${name}: try the translator`;
  for (const direction of Object.keys(directions)) $('direction').add(new Option(direction, direction));
  await loadLiteRt(new URL(state.manifest.litert.wasm, location.href).href);
  state.accelerator = isWebGPUSupported() ? 'webgpu' : 'wasm';
  wire();
  showExamples();
  say('Translating an example…');
  await translateUrl(directions[$('direction').value].examples[0]);
}

guarded(main);
