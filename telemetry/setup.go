package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agenthelm/agenthelm/config"
)

// Span export tuning. The queue is bounded and never blocks: when the
// collector is slow or down, spans beyond it are dropped.
const (
	spanQueueSize   = 4096
	spanExportBatch = 512
	exportTimeout   = 10 * time.Second
	// failureLogEvery rate-limits the warning about failed exports.
	failureLogEvery = 30 * time.Second
)

// retry bounds how long one export batch is retried before it is dropped.
var retry = struct {
	initial, max, elapsed time.Duration
}{time.Second, 5 * time.Second, 30 * time.Second}

// Options configure Setup. The zero value works.
type Options struct {
	// ServiceVersion is the service.version resource attribute. Empty:
	// "unknown".
	ServiceVersion string
	// InstanceID is the service.instance.id resource attribute. Empty: a
	// random id for this process.
	InstanceID string
	// Logger receives setup messages and (rate-limited) export failures.
	// Nil discards them.
	Logger *slog.Logger
	// Redactor masks captured arguments and results, and error messages
	// on spans. Nil means DefaultRedactor; pass one built from the
	// config's redaction section.
	Redactor *Redactor
}

// Providers holds the tracer and meter providers Setup built, the Tracer
// and Metrics on them, and the Prometheus registry behind MetricsHandler.
type Providers struct {
	tp        trace.TracerProvider
	sdkTP     *sdktrace.TracerProvider // nil with exporter none
	mp        *sdkmetric.MeterProvider
	registry  *prometheus.Registry
	handler   http.Handler
	tracer    *Tracer
	metrics   *Metrics
	log       *slog.Logger
	traceLog  *exportLog
	metricLog *exportLog // OTLP metric export (nil without)

	once sync.Once
	err  error
}

// Setup builds the telemetry providers from the telemetry section of the
// config:
//
//   - exporter "none" (or empty): a no-op tracer provider (spans cost
//     nothing) and metrics for Prometheus only;
//   - exporter "otlp": spans through a bounded, non-blocking batch
//     processor and metrics through a periodic reader, both over OTLP
//     (otlp_protocol "http" or "grpc"). The endpoint is otlp_endpoint when
//     set (it wins over OTEL_EXPORTER_OTLP_* variables), else what the
//     standard variables say, else the exporters' defaults
//     (localhost:4318 / localhost:4317). Headers, compression, timeouts
//     and certificates come from the standard variables.
//     OTEL_METRICS_EXPORTER=none or prometheus keeps metrics off OTLP.
//
// Traces are sampled parent-based with sample_ratio for new traces. The
// resource has service.name=agenthelm, service.version and
// service.instance.id (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
// override them). A private Prometheus registry always exists, with Go and
// process collectors: see MetricsHandler.
//
// Setup does not set OpenTelemetry's global providers. Call Shutdown at
// the end to flush.
func Setup(ctx context.Context, cfg config.Telemetry, opts Options) (*Providers, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Exporter == "" {
		cfg.Exporter = config.ExporterNone
	}
	if cfg.Exporter != config.ExporterNone && cfg.Exporter != config.ExporterOTLP {
		return nil, fmt.Errorf("telemetry.exporter: %q is neither none nor otlp", cfg.Exporter)
	}
	if cfg.OTLPProtocol == "" {
		cfg.OTLPProtocol = config.ProtocolHTTP
	}
	if cfg.OTLPProtocol != config.ProtocolHTTP && cfg.OTLPProtocol != config.ProtocolGRPC {
		return nil, fmt.Errorf("telemetry.otlp_protocol: %q is neither http nor grpc", cfg.OTLPProtocol)
	}
	ep, err := parseEndpoint(cfg.OTLPEndpoint)
	if err != nil {
		return nil, fmt.Errorf("telemetry.otlp_endpoint: %w", err)
	}
	res := newResource(ctx, opts, log)

	p := &Providers{log: log, registry: prometheus.NewRegistry()}
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := otelprom.New(otelprom.WithRegisterer(p.registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	p.handler = promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}

	p.tp = noop.NewTracerProvider()
	if cfg.Exporter == config.ExporterOTLP {
		spanExp, err := newSpanExporter(ctx, cfg, ep)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		p.traceLog = &exportLog{log: log, signal: "traces"}
		p.sdkTP = sdktrace.NewTracerProvider(
			sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
			sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(loggingSpanExporter{spanExp, p.traceLog},
				sdktrace.WithMaxQueueSize(spanQueueSize),
				sdktrace.WithMaxExportBatchSize(spanExportBatch),
				sdktrace.WithExportTimeout(exportTimeout))),
		)
		p.tp = p.sdkTP
		if otlpMetrics(ep) {
			mexp, err := newMetricExporter(ctx, cfg, ep)
			if err != nil {
				_ = p.sdkTP.Shutdown(ctx)
				return nil, fmt.Errorf("otlp metric exporter: %w", err)
			}
			p.metricLog = &exportLog{log: log, signal: "metrics"}
			mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(loggingMetricExporter{mexp, p.metricLog})))
		}
		log.Info("telemetry: exporting over otlp", "protocol", cfg.OTLPProtocol,
			"endpoint", endpointForLog(cfg), "sample_ratio", cfg.SampleRatio, "otlp_metrics", p.metricLog != nil)
	}
	p.mp = sdkmetric.NewMeterProvider(mopts...)
	p.metrics, err = NewMetrics(p.mp)
	if err != nil {
		_ = p.Shutdown(ctx)
		return nil, fmt.Errorf("metrics: %w", err)
	}
	p.tracer = NewTracer(p.tp, TracerOptions{Metrics: p.metrics, Redactor: opts.Redactor, CaptureArguments: cfg.CaptureArguments})
	return p, nil
}

// Tracer returns the Tracer to decorate the engine with (ServerInterceptor)
// and to start the engine's spans.
func (p *Providers) Tracer() *Tracer { return p.tracer }

// Metrics returns the instruments.
func (p *Providers) Metrics() *Metrics { return p.metrics }

// TracerProvider returns the tracer provider (a no-op one with exporter none).
func (p *Providers) TracerProvider() trace.TracerProvider { return p.tp }

// MeterProvider returns the meter provider.
func (p *Providers) MeterProvider() metric.MeterProvider { return p.mp }

// MetricsHandler serves the metrics in the Prometheus text format, for
// /metrics on the admin listener. It reads a private registry: nothing is
// registered globally.
func (p *Providers) MetricsHandler() http.Handler { return p.handler }

// Shutdown flushes pending spans and metrics and stops the exporters. It
// returns when done or when ctx ends, whichever comes first; exports that
// failed while flushing are reported. Later calls return the first result.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.once.Do(func() {
		var errs []error
		if p.sdkTP != nil {
			before := p.traceLog.failures.Load()
			if err := p.sdkTP.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shut down tracing: %w", err))
			} else if p.traceLog.failures.Load() > before {
				errs = append(errs, fmt.Errorf("flush spans: %w", p.traceLog.lastErr()))
			}
		}
		if p.mp != nil {
			var before int64
			if p.metricLog != nil {
				before = p.metricLog.failures.Load()
			}
			if err := p.mp.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shut down metrics: %w", err))
			} else if p.metricLog != nil && p.metricLog.failures.Load() > before {
				errs = append(errs, fmt.Errorf("flush metrics: %w", p.metricLog.lastErr()))
			}
		}
		p.err = errors.Join(errs...)
	})
	return p.err
}

// newResource describes this process.
func newResource(ctx context.Context, opts Options, log *slog.Logger) *resource.Resource {
	version := opts.ServiceVersion
	if version == "" {
		version = "unknown"
	}
	id := opts.InstanceID
	if id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	// Later detectors win: the standard variables override the defaults.
	res, err := resource.New(ctx,
		resource.WithSchemaURL(schemaURL),
		resource.WithAttributes(attrServiceName, serviceVersionAttr(version), serviceInstanceAttr(id)),
		resource.WithFromEnv(),
	)
	if err != nil {
		log.Warn("telemetry: resource attributes from the environment ignored", "err", err)
		if res == nil {
			res = resource.NewWithAttributes(schemaURL, attrServiceName, serviceVersionAttr(version), serviceInstanceAttr(id))
		}
	}
	return res
}

// endpoint is otlp_endpoint parsed: a URL or host:port (or nothing).
type endpoint struct {
	url      *url.URL
	hostport string
}

func (e endpoint) set() bool { return e.url != nil || e.hostport != "" }

func parseEndpoint(s string) (endpoint, error) {
	if s == "" {
		return endpoint{}, nil
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return endpoint{}, fmt.Errorf("%q is not a URL: %v", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return endpoint{}, fmt.Errorf("%q must be an http:// or https:// URL with a host", s)
		}
		return endpoint{url: u}, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return endpoint{}, fmt.Errorf("%q is neither an http(s) URL nor host:port", s)
	}
	return endpoint{hostport: s}, nil
}

// signalPath is the OTLP/HTTP path of a signal under a base URL path, as
// for OTEL_EXPORTER_OTLP_ENDPOINT: http://c:4318 sends traces to
// /v1/traces, http://c:4318/otlp to /otlp/v1/traces. A base that already
// ends in a signal path is taken as the collector's base.
func signalPath(base, signal string) string {
	base = strings.TrimSuffix(base, "/")
	for _, s := range []string{"/v1/traces", "/v1/metrics", "/v1/logs"} {
		base = strings.TrimSuffix(base, s)
	}
	return base + "/v1/" + signal
}

// otlpMetrics says whether metrics also go over OTLP: not when
// OTEL_METRICS_EXPORTER says otherwise, nor when only a traces endpoint
// is known (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone).
func otlpMetrics(ep endpoint) bool {
	switch strings.TrimSpace(os.Getenv("OTEL_METRICS_EXPORTER")) {
	case "none", "prometheus":
		return false
	}
	if ep.set() {
		return true
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

// endpointForLog names the endpoint in use, without credentials.
func endpointForLog(cfg config.Telemetry) string {
	clean := func(s string) string {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return u.Redacted()
		}
		return s
	}
	if cfg.OTLPEndpoint != "" {
		return clean(cfg.OTLPEndpoint)
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if s := os.Getenv(v); s != "" {
			return clean(s) + " (" + v + ")"
		}
	}
	return "exporter default"
}

func newSpanExporter(ctx context.Context, cfg config.Telemetry, ep endpoint) (sdktrace.SpanExporter, error) {
	if cfg.OTLPProtocol == config.ProtocolGRPC {
		o := []otlptracegrpc.Option{otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
			Enabled: true, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.elapsed})}
		switch {
		case ep.url != nil:
			o = append(o, otlptracegrpc.WithEndpointURL(ep.url.String()))
		case ep.hostport != "":
			o = append(o, otlptracegrpc.WithEndpoint(ep.hostport))
		}
		if cfg.Insecure && ep.url == nil {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, o...)
	}
	o := []otlptracehttp.Option{otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
		Enabled: true, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.elapsed})}
	switch {
	case ep.url != nil:
		o = append(o, otlptracehttp.WithEndpointURL(ep.url.String()), otlptracehttp.WithURLPath(signalPath(ep.url.Path, "traces")))
	case ep.hostport != "":
		o = append(o, otlptracehttp.WithEndpoint(ep.hostport))
	}
	if cfg.Insecure && ep.url == nil {
		o = append(o, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(ctx, o...)
}

func newMetricExporter(ctx context.Context, cfg config.Telemetry, ep endpoint) (sdkmetric.Exporter, error) {
	if cfg.OTLPProtocol == config.ProtocolGRPC {
		o := []otlpmetricgrpc.Option{otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{
			Enabled: true, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.elapsed})}
		switch {
		case ep.url != nil:
			o = append(o, otlpmetricgrpc.WithEndpointURL(ep.url.String()))
		case ep.hostport != "":
			o = append(o, otlpmetricgrpc.WithEndpoint(ep.hostport))
		}
		if cfg.Insecure && ep.url == nil {
			o = append(o, otlpmetricgrpc.WithInsecure())
		}
		return otlpmetricgrpc.New(ctx, o...)
	}
	o := []otlpmetrichttp.Option{otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{
		Enabled: true, InitialInterval: retry.initial, MaxInterval: retry.max, MaxElapsedTime: retry.elapsed})}
	switch {
	case ep.url != nil:
		o = append(o, otlpmetrichttp.WithEndpointURL(ep.url.String()), otlpmetrichttp.WithURLPath(signalPath(ep.url.Path, "metrics")))
	case ep.hostport != "":
		o = append(o, otlpmetrichttp.WithEndpoint(ep.hostport))
	}
	if cfg.Insecure && ep.url == nil {
		o = append(o, otlpmetrichttp.WithInsecure())
	}
	return otlpmetrichttp.New(ctx, o...)
}

// exportLog logs failed exports through the injected logger, at most once
// per failureLogEvery, instead of OpenTelemetry's global error handler.
type exportLog struct {
	log      *slog.Logger
	signal   string
	failures atomic.Int64

	mu         sync.Mutex
	last       error
	lastLogged time.Time
	suppressed int
}

func (l *exportLog) handle(err error) {
	if err == nil {
		return
	}
	l.failures.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = err
	if now := time.Now(); now.Sub(l.lastLogged) >= failureLogEvery {
		l.log.Warn("telemetry: otlp export failed; data is dropped until the collector answers",
			"signal", l.signal, "err", err, "failures_since_last_log", l.suppressed)
		l.lastLogged = now
		l.suppressed = 0
		return
	}
	l.suppressed++
}

func (l *exportLog) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// loggingSpanExporter reports export failures to an exportLog; the batch
// processor then drops the batch, as it would anyway.
type loggingSpanExporter struct {
	sdktrace.SpanExporter
	log *exportLog
}

func (e loggingSpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.log.handle(e.SpanExporter.ExportSpans(ctx, spans))
	return nil
}

// loggingMetricExporter reports export failures to an exportLog.
type loggingMetricExporter struct {
	sdkmetric.Exporter
	log *exportLog
}

func (e loggingMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	e.log.handle(e.Exporter.Export(ctx, rm))
	return nil
}
