// Prometheus metrics (prom-client, one registry per server so two servers in
// a process never share counters). Names follow vLLM/TGI where one exists
// (spec/shipping-and-serving.md section 4), under a tessera_ prefix.
import { monitorEventLoopDelay } from 'node:perf_hooks';

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import { hostPoolStats } from '../runtime.js';

/** monitorEventLoopDelay's sampling interval; each sample includes it, so it is subtracted. */
const LOOP_RESOLUTION_MS = 10;
const LATENCY = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface Sources {
  waiting(): number;
  running(): number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  /** The same, reset by every /metrics scrape: the delay over the scrape interval (a load test's window). */
  readonly loopDelayWindow = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  readonly batchSize: Histogram;
  readonly timeToFirstProgress: Histogram;
  readonly stepDuration: Histogram<'model'>;
  readonly e2eLatency: Histogram<'endpoint'>;
  readonly queueDuration: Histogram;
  readonly acceptanceRate: Histogram<'model'>;
  readonly requests: Counter<'endpoint' | 'code'>;
  readonly cancelled: Counter<'reason'>;

  constructor(sources: Sources) {
    const registers = [this.registry];
    this.loopDelay.enable();
    this.loopDelayWindow.enable();
    collectDefaultMetrics({ register: this.registry });
    new Gauge({ name: 'tessera_queue_depth', help: 'Requests waiting for a cohort (tgi_queue_size)', registers, collect() { this.set(sources.waiting()); } });
    new Gauge({ name: 'tessera_requests_running', help: 'Requests in a running cohort (vllm:num_requests_running)', registers, collect() { this.set(sources.running()); } });
    this.batchSize = new Histogram({ name: 'tessera_batch_size', help: 'Images per batched native step (tgi_batch_current_size)', registers, buckets: [1, 2, 4, 8, 16, 32, 64, 128] });
    this.timeToFirstProgress = new Histogram({ name: 'tessera_time_to_first_progress_seconds', help: 'Request arrival to its first progress event (vllm:time_to_first_token_seconds)', registers, buckets: LATENCY });
    this.stepDuration = new Histogram({ name: 'tessera_step_duration_seconds', help: 'One batched transformer step: a VAR scale or a LlamaGen token (tgi_batch_forward_duration)', labelNames: ['model'], registers, buckets: LATENCY });
    this.e2eLatency = new Histogram({ name: 'tessera_e2e_request_latency_seconds', help: 'Request arrival to response (vllm:e2e_request_latency_seconds)', labelNames: ['endpoint'], registers, buckets: LATENCY });
    this.queueDuration = new Histogram({ name: 'tessera_request_queue_duration_seconds', help: 'Time a request waited for its cohort (tgi_request_queue_duration)', registers, buckets: LATENCY });
    this.acceptanceRate = new Histogram({ name: 'tessera_spec_decode_acceptance_rate', help: 'Per request: accepted draft tokens / draft tokens (speculative decoding)', labelNames: ['model'], registers, buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1] });
    this.requests = new Counter({ name: 'tessera_requests_total', help: 'Requests answered, by endpoint and HTTP status', labelNames: ['endpoint', 'code'], registers });
    this.cancelled = new Counter({ name: 'tessera_requests_cancelled_total', help: 'Requests dropped before completion (tgi_request_failure{err="dropped"})', labelNames: ['reason'], registers });
    const pool = new Gauge({ name: 'tessera_native_host_pool_bytes', help: 'Native host memory pool (hostPoolStats)', labelNames: ['state'], registers,
      collect() { const s = hostPoolStats(); pool.set({ state: 'in_use' }, s.bytesInUse); pool.set({ state: 'cached' }, s.bytesCached); } });
    const loop = this.loopDelay;
    const delay = new Gauge({ name: 'tessera_event_loop_delay_seconds', help: 'Event-loop delay since start beyond the 10 ms sampling interval (perf_hooks monitorEventLoopDelay)', labelNames: ['quantile'], registers,
      collect() {
        const d = metricsOf(loop);
        delay.set({ quantile: '0.5' }, d.p50 / 1e3);
        delay.set({ quantile: '0.99' }, d.p99 / 1e3);
        delay.set({ quantile: 'max' }, d.max / 1e3);
      } });
    const win = this.loopDelayWindow;
    const recent = new Gauge({ name: 'tessera_event_loop_delay_window_seconds', help: 'Event-loop delay since the previous scrape of /metrics (each scrape resets it), beyond the 10 ms sampling interval', labelNames: ['quantile'], registers,
      collect() {
        const d = metricsOf(win);
        recent.set({ quantile: '0.5' }, d.p50 / 1e3);
        recent.set({ quantile: '0.99' }, d.p99 / 1e3);
        recent.set({ quantile: 'max' }, d.max / 1e3);
        win.reset();
      } });
  }

  /** Event-loop delay in milliseconds since start (p50, p99, max). */
  eventLoopDelayMs(): { p50: number; p99: number; max: number } {
    return metricsOf(this.loopDelay);
  }

  close(): void {
    this.loopDelay.disable();
    this.loopDelayWindow.disable();
    this.registry.clear();
  }
}

/** Delay beyond the sampling interval, ms (0 before the first sample). */
function metricsOf(h: ReturnType<typeof monitorEventLoopDelay>): { p50: number; p99: number; max: number } {
  const ms = (ns: number): number => (h.count === 0 ? 0 : Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS));
  return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) };
}
