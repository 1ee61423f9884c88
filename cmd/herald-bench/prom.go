package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hist is a Prometheus histogram as scraped: cumulative bucket counts.
type hist struct {
	le     []float64
	cum    []float64
	count  float64
	sum    float64
	sample float64 // a counter, when scraping one
}

// scrape reads name's series matching label (e.g. `lane="hot"`, or "" for
// any) from a /metrics page. Histograms fill le/cum/count/sum; a plain
// counter or gauge is summed into sample.
func scrape(url, name, label string) (hist, error) {
	page, err := fetchMetrics(url)
	if err != nil {
		return hist{}, err
	}
	return parseMetric(page, name, label)
}

// fetchMetrics reads a /metrics page, for parseMetric to read several
// metrics of one scrape.
func fetchMetrics(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	var sb strings.Builder
	_, err = io.Copy(&sb, io.LimitReader(resp.Body, 256<<20))
	return sb.String(), err
}

// parseMetric is scrape's reading of a page fetchMetrics read.
func parseMetric(page, name, label string) (hist, error) {
	var h hist
	buckets := map[float64]float64{}
	sc := bufio.NewScanner(strings.NewReader(page))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (label != "" && !strings.Contains(line, label)) {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		metric, _, _ := strings.Cut(series, "{")
		switch metric {
		case name + "_bucket":
			i := strings.Index(series, `le="`)
			if i < 0 {
				continue
			}
			rest := series[i+4:]
			le, err := strconv.ParseFloat(rest[:strings.IndexByte(rest, '"')], 64)
			if err != nil {
				continue
			}
			buckets[le] += v
		case name + "_sum":
			h.sum += v
		case name + "_count":
			h.count += v
		case name:
			h.sample += v
		}
	}
	for le := range buckets {
		h.le = append(h.le, le)
	}
	sort.Float64s(h.le)
	for _, le := range h.le {
		h.cum = append(h.cum, buckets[le])
	}
	return h, sc.Err()
}

// add merges another relay's histogram (same buckets).
func (h hist) add(o hist) hist {
	if len(h.le) == 0 {
		return o
	}
	out := hist{le: h.le, count: h.count + o.count, sum: h.sum + o.sum, sample: h.sample + o.sample}
	for i := range h.le {
		v := h.cum[i]
		if i < len(o.cum) {
			v += o.cum[i]
		}
		out.cum = append(out.cum, v)
	}
	return out
}

// sub returns h minus an earlier reading of the same histogram.
func (h hist) sub(o hist) hist {
	out := hist{le: h.le, count: h.count - o.count, sum: h.sum - o.sum, sample: h.sample - o.sample}
	for i := range h.le {
		v := h.cum[i]
		if i < len(o.cum) {
			v -= o.cum[i]
		}
		out.cum = append(out.cum, v)
	}
	return out
}

// quantileUpper is the upper bound of the bucket holding quantile q: the
// quantile is at most this (+Inf when it lies past the last finite bucket).
func (h hist) quantileUpper(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	target := q * h.count
	for i, c := range h.cum {
		if c >= target {
			return h.le[i]
		}
	}
	return math.Inf(1)
}

// quantileInterp interpolates linearly inside the bucket, as PromQL's
// histogram_quantile does.
func (h hist) quantileInterp(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	target := q * h.count
	prevLe, prevC := 0.0, 0.0
	for i, c := range h.cum {
		if c >= target {
			if math.IsInf(h.le[i], 1) {
				return prevLe
			}
			if c == prevC {
				return h.le[i]
			}
			return prevLe + (h.le[i]-prevLe)*(target-prevC)/(c-prevC)
		}
		prevLe, prevC = h.le[i], c
	}
	return math.Inf(1)
}

func (h hist) mean() float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// GoMemory is what a Go process's metrics say of its memory: goroutines,
// their stacks, the heap in use and the heap size at which the next
// collection starts (GOGC), in MiB.
type GoMemory struct {
	Goroutines float64 `json:"goroutines"`
	StackMiB   float64 `json:"stack_inuse_mib"`
	HeapMiB    float64 `json:"heap_inuse_mib"`
	NextGCMiB  float64 `json:"next_gc_mib"`
}

// scrapeMemory reads url's Go memory gauges, in one scrape; nil if it
// cannot.
func scrapeMemory(url string) *GoMemory {
	page, err := fetchMetrics(url)
	if err != nil {
		return nil
	}
	var m GoMemory
	for _, g := range []struct {
		name string
		v    *float64
		div  float64
	}{
		{"go_goroutines", &m.Goroutines, 1},
		{"go_memstats_stack_inuse_bytes", &m.StackMiB, 1 << 20},
		{"go_memstats_heap_inuse_bytes", &m.HeapMiB, 1 << 20},
		{"go_memstats_next_gc_bytes", &m.NextGCMiB, 1 << 20},
	} {
		h, err := parseMetric(page, g.name, "")
		if err != nil {
			return nil
		}
		*g.v = round(h.sample/g.div, 1)
	}
	return &m
}
