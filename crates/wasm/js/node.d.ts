export * from './swarmbus.js';
