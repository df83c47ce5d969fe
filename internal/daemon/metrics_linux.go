package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/valeswitch/vale/vale"
	"github.com/valeswitch/vale/vale/wire"
)

// The Prometheus endpoint: a collector that reads the daemon's counters at
// each scrape (nothing is counted twice on the data path), plus Go's and
// the process's own metrics (goroutines, descriptors, memory).

type metricsServer struct {
	srv  *http.Server
	addr string
}

var (
	portLabels = []string{"switch", "port", "kind"}

	mPortTx      = prometheus.NewDesc("vale_port_tx_packets_total", "Frames the port sent into the switch.", portLabels, nil)
	mPortTxBytes = prometheus.NewDesc("vale_port_tx_bytes_total", "Bytes the port sent into the switch.", portLabels, nil)
	mPortRx      = prometheus.NewDesc("vale_port_rx_packets_total", "Frames the switch delivered to the port.", portLabels, nil)
	mPortRxBytes = prometheus.NewDesc("vale_port_rx_bytes_total", "Bytes the switch delivered to the port.", portLabels, nil)
	mPortDrops   = prometheus.NewDesc("vale_port_drops_total",
		"Frames lost, by reason: dst_full (the port's receive side had no room), invalid (from the port, too short or with an offload that did not describe them), no_route (from the port, nowhere to go).",
		append(portLabels, "reason"), nil)
	mPortResets    = prometheus.NewDesc("vale_port_ring_resets_total", "Rings of the port reset after a client violation.", portLabels, nil)
	mPortOccupancy = prometheus.NewDesc("vale_port_ring_occupancy_frames",
		"Frames in flight in the port's rings (client ports): published and not yet switched (tx), delivered and not yet read (rx).",
		append(portLabels, "direction"), nil)

	swLabels       = []string{"switch"}
	mSwPorts       = prometheus.NewDesc("vale_switch_ports", "Ports attached to the switch.", swLabels, nil)
	mSwRounds      = prometheus.NewDesc("vale_switch_rounds_total", "Forwarding rounds.", swLabels, nil)
	mSwBatch       = prometheus.NewDesc("vale_switch_batch_frames", "Frames per forwarding round.", swLabels, nil)
	mSwMACs        = prometheus.NewDesc("vale_switch_mac_entries", "Addresses in the learning table.", swLabels, nil)
	mSwLearned     = prometheus.NewDesc("vale_switch_mac_learned_total", "Addresses learned.", swLabels, nil)
	mSwMoved       = prometheus.NewDesc("vale_switch_mac_moved_total", "Addresses seen moving to another port.", swLabels, nil)
	mSwAged        = prometheus.NewDesc("vale_switch_mac_aged_total", "Addresses forgotten for age.", swLabels, nil)
	mSwTableFull   = prometheus.NewDesc("vale_switch_mac_table_full_total", "Addresses not learned because the table was full.", swLabels, nil)
	mVhostUp       = prometheus.NewDesc("vale_vhost_user_connected", "1 while a vhost-user frontend is connected.", portLabels, nil)
	mVhostFeatures = prometheus.NewDesc("vale_vhost_user_features", "Virtio features the frontend acked (a bit mask).", portLabels, nil)
	mVhostPairs    = prometheus.NewDesc("vale_vhost_user_queue_pairs", "Queue pairs started and enabled.", portLabels, nil)
	mVhostSessions = prometheus.NewDesc("vale_vhost_user_sessions_total", "Frontend connections served.", portLabels, nil)
	mVhostNoBuf    = prometheus.NewDesc("vale_vhost_user_rx_nobuf_total", "Frames for the guest dropped for lack of receive buffers.", portLabels, nil)
	mVhostBadHdr   = prometheus.NewDesc("vale_vhost_user_tx_bad_header_total", "Frames from the guest dropped for a header that did not apply.", portLabels, nil)
	mVhostStopped  = prometheus.NewDesc("vale_vhost_user_stopped_queues_total", "Queues stopped after a driver violation.", portLabels, nil)
	mXDPInfo       = prometheus.NewDesc("vale_afxdp_info", "An interface attached over AF_XDP, with the mode obtained.", append(portLabels, "interface", "mode"), nil)
	mXDPStats      = prometheus.NewDesc("vale_afxdp_kernel_events_total",
		"The kernel's AF_XDP counters summed over the port's sockets (XDP_STATISTICS).", append(portLabels, "event"), nil)
)

// collector exposes the daemon's state.
type collector struct{ d *Daemon }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mPortTx, mPortTxBytes, mPortRx, mPortRxBytes, mPortDrops, mPortResets, mPortOccupancy,
		mSwPorts, mSwRounds, mSwBatch, mSwMACs, mSwLearned, mSwMoved, mSwAged, mSwTableFull,
		mVhostUp, mVhostFeatures, mVhostPairs, mVhostSessions, mVhostNoBuf, mVhostBadHdr, mVhostStopped, mXDPInfo, mXDPStats} {
		ch <- d
	}
}

// metricSink sends constant metrics to a collection.
type metricSink chan<- prometheus.Metric

func (m metricSink) counter(desc *prometheus.Desc, v uint64, labels ...string) {
	m <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
}

func (m metricSink) gauge(desc *prometheus.Desc, v float64, labels ...string) {
	m <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
}

// portEntry is a port's switch counters and the port, for its metrics.
type portEntry struct {
	info wire.PortInfo
	port port
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	sws, entries := c.snapshot()
	m := metricSink(ch)
	for _, s := range sws {
		m.collectSwitch(s)
	}
	for _, e := range entries {
		l := []string{e.info.Switch, e.info.Name, e.info.Kind}
		m.collectPort(e.info.Stats, l)
		e.port.collect(m, l)
	}
}

// snapshot takes what the metrics report under the daemon's lock.
func (c collector) snapshot() ([]wire.SwitchInfo, []portEntry) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	var sws []wire.SwitchInfo
	var entries []portEntry
	for _, ss := range d.switches {
		sws = append(sws, ss.sw.Info())
		byName := map[string]wire.PortInfo{}
		for _, p := range ss.sw.Ports() {
			byName[p.Name] = p
		}
		for name, ps := range ss.ports {
			if info, ok := byName[name]; ok {
				entries = append(entries, portEntry{info, ps.port})
			}
		}
	}
	return sws, entries
}

func (m metricSink) collectSwitch(s wire.SwitchInfo) {
	m.gauge(mSwPorts, float64(s.Ports), s.Name)
	m.counter(mSwRounds, s.Rounds, s.Name)
	m.gauge(mSwMACs, float64(s.MACs), s.Name)
	m.counter(mSwLearned, s.Learned, s.Name)
	m.counter(mSwMoved, s.Moved, s.Name)
	m.counter(mSwAged, s.Aged, s.Name)
	m.counter(mSwTableFull, s.TableFull, s.Name)
	buckets := map[float64]uint64{}
	var cum uint64
	for k := 1; k < vale.BatchBuckets; k++ {
		cum += s.Batches[k]
		buckets[float64(uint64(1)<<k-1)] = cum
	}
	m <- prometheus.MustNewConstHistogram(mSwBatch, s.Rounds, float64(s.Frames), buckets, s.Name)
}

func (m metricSink) collectPort(st wire.PortStats, l []string) {
	m.counter(mPortTx, st.TxPackets, l...)
	m.counter(mPortTxBytes, st.TxBytes, l...)
	m.counter(mPortRx, st.RxPackets, l...)
	m.counter(mPortRxBytes, st.RxBytes, l...)
	m.counter(mPortDrops, st.DropFull, append(l, "dst_full")...)
	m.counter(mPortDrops, st.DropInvalid, append(l, "invalid")...)
	m.counter(mPortDrops, st.DropNoRoute, append(l, "no_route")...)
	m.counter(mPortResets, st.Resets, l...)
}

// startMetrics serves the endpoint on addr.
func (d *Daemon) startMetrics(addr string) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	d.metrics = &metricsServer{srv: srv, addr: ln.Addr().String()}
	go srv.Serve(ln)
	d.log.Info("metrics endpoint listening", "address", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

func (d *Daemon) stopMetrics() {
	if d.metrics == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d.metrics.srv.Shutdown(ctx)
	d.metrics = nil
}

// restartMetrics moves the endpoint to addr (empty: none).
func (d *Daemon) restartMetrics(addr string) {
	d.stopMetrics()
	if addr == "" {
		d.log.Info("metrics endpoint stopped")
		return
	}
	if err := d.startMetrics(addr); err != nil {
		d.log.Error("metrics endpoint", "error", err)
	}
}

// MetricsAddr returns where the metrics endpoint listens ("" if off).
func (d *Daemon) MetricsAddr() string {
	if d.metrics == nil {
		return ""
	}
	return d.metrics.addr
}
