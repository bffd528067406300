export * from './swarmbus.js';
export { default } from './swarmbus.js';
