package reliability_test

import (
	"fmt"
	"os"
	"strings"
)

// soakSample is one sample of TestSoak.
type soakSample struct {
	at          float64 // seconds since the load began
	rss, disk   int64
	fds         int
	checks      int64
	written     float64
	dropped     float64
	writeErrors float64
}

// writeSoakCSV writes the samples as CSV to path.
func writeSoakCSV(path string, ss []soakSample) error {
	var b strings.Builder
	b.WriteString("seconds,rss_bytes,data_dir_bytes,open_fds,checks,written,dropped,write_errors\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "%.0f,%d,%d,%d,%d,%.0f,%.0f,%.0f\n", s.at, s.rss, s.disk, s.fds, s.checks, s.written, s.dropped, s.writeErrors)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeSoakSVG plots RSS, the data directory's size and open files over
// time, one panel each, as an SVG file at path.
func writeSoakSVG(path, title string, ss []soakSample) error {
	const (
		width, panelH, left, right, top, gap = 760, 170, 70, 20, 40, 50
	)
	panels := []struct {
		name, unit string
		val        func(soakSample) float64
		color      string
	}{
		{"RSS", "MiB", func(s soakSample) float64 { return float64(s.rss) / (1 << 20) }, "#1f77b4"},
		{"data directory (allocated)", "MiB", func(s soakSample) float64 { return float64(s.disk) / (1 << 20) }, "#d62728"},
		{"open file descriptors", "", func(s soakSample) float64 { return float64(s.fds) }, "#2ca02c"},
	}
	height := top + len(panels)*(panelH+gap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="22" font-size="15">%s</text>`+"\n", left, svgEscape(title))
	tmax := 1.0
	for _, s := range ss {
		tmax = max(tmax, s.at)
	}
	plotW := float64(width - left - right)
	for p, pn := range panels {
		y0 := float64(top + p*(panelH+gap))
		vmax := 0.0
		for _, s := range ss {
			vmax = max(vmax, pn.val(s))
		}
		vmax = niceCeil(vmax)
		fmt.Fprintf(&b, `<text x="%d" y="%.0f">%s</text>`+"\n", left, y0+12, svgEscape(pn.name+unitSuffix(pn.unit)))
		y0 += 20
		h := float64(panelH - 20)
		fmt.Fprintf(&b, `<rect x="%d" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#999"/>`+"\n", left, y0, plotW, h)
		for i := 0; i <= 4; i++ {
			v := vmax * float64(i) / 4
			y := y0 + h - h*float64(i)/4
			fmt.Fprintf(&b, `<line x1="%d" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
				left, float64(left)+plotW, y, y, left-6, y+4, trimFloat(v))
		}
		for i := 0; i <= 6; i++ {
			tt := tmax * float64(i) / 6
			x := float64(left) + plotW*float64(i)/6
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s min</text>`+"\n", x, y0+h+15, trimFloat(tt/60))
		}
		var pts strings.Builder
		for _, s := range ss {
			x := float64(left) + plotW*s.at/tmax
			y := y0 + h - h*pn.val(s)/max(vmax, 1e-9)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", pn.color, strings.TrimSpace(pts.String()))
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " (" + u + ")"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for p > v {
		p /= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	return strings.TrimSuffix(s, ".0")
}

func svgEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
