package check

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The build command, exactly as scripts/build.sh runs it; the Makefile and the
// Dockerfile both go through the script.
const buildCommand = `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$outdir/$service" "./services/$service"`

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
	Line int
}

// parseDockerfile is a small line parser: enough to check which instructions
// appear, in which stage and order (BuildKit is not available here).
func parseDockerfile(data []byte) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue // blank line or comment (also the "# syntax=" directive)
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
		cur.Reset()
	}
	return out
}

// stages splits instructions at each FROM.
func stages(ins []instruction) [][]instruction {
	var out [][]instruction
	for _, in := range ins {
		if in.Cmd == "FROM" {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], in)
		}
	}
	return out
}

// index returns the position of the first instruction in s for which match
// is true, or -1.
func index(s []instruction, match func(instruction) bool) int {
	for i, in := range s {
		if match(in) {
			return i
		}
	}
	return -1
}

func checkDockerfile(data []byte, goMinor string) problems {
	var pr problems
	st := stages(parseDockerfile(data))
	if len(st) < 2 {
		pr.addf("Dockerfile: want a multi-stage build, found %d stage(s)", len(st))
		return pr
	}

	// Every base image pinned; the builder is the Go release of go.mod.
	for _, s := range st {
		from := strings.Fields(s[0].Args)
		var ref string
		for _, f := range from {
			if !strings.HasPrefix(f, "--") { // skip --platform=...
				ref = f
				break
			}
		}
		if ref == "scratch" {
			continue
		}
		if why := imagePinned(ref); why != "" {
			pr.addf("Dockerfile:%d: base image %q %s", s[0].Line, ref, why)
		}
	}
	build, final := st[0], st[len(st)-1]
	if from := build[0].Args; !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goMinor) + `\.[0-9]+`).MatchString(from) {
		pr.addf("Dockerfile: builder %q, want golang:%s.<patch> (go.mod's Go release)", from, goMinor)
	}

	// The build stage: module download cached in its own layer, then the
	// sources, then scripts/build.sh for $SERVICE with cgo off.
	copyMod := index(build, func(in instruction) bool {
		return in.Cmd == "COPY" && strings.Contains(in.Args, "go.mod") && strings.Contains(in.Args, "go.sum") && !strings.Contains(in.Args, ". .")
	})
	download := index(build, func(in instruction) bool { return in.Cmd == "RUN" && strings.Contains(in.Args, "go mod download") })
	copyAll := index(build, func(in instruction) bool { return in.Cmd == "COPY" && strings.HasSuffix(in.Args, ". .") })
	arg := index(build, func(in instruction) bool { return in.Cmd == "ARG" && strings.HasPrefix(in.Args, "SERVICE") })
	runBuild := index(build, func(in instruction) bool {
		return in.Cmd == "RUN" && regexp.MustCompile(`scripts/build\.sh\s+"?\$\{?SERVICE\}?"?\s`).MatchString(in.Args)
	})
	cgo := index(build, func(in instruction) bool {
		return (in.Cmd == "ENV" || in.Cmd == "RUN") && regexp.MustCompile(`(^|\s)CGO_ENABLED=0(\s|$)`).MatchString(in.Args)
	})
	switch {
	case copyMod < 0 || download < 0 || copyAll < 0:
		pr.addf("Dockerfile: the build stage must COPY go.mod go.sum, RUN go mod download, then COPY . .")
	case !(copyMod < download && download < copyAll):
		pr.addf("Dockerfile: go mod download must come after COPY go.mod go.sum and before COPY . . (layer caching)")
	}
	if runBuild < 0 {
		pr.addf(`Dockerfile: the build stage must RUN scripts/build.sh "$SERVICE" <outdir> (the Makefile's build command)`)
	} else {
		if arg < 0 || arg > runBuild {
			pr.addf("Dockerfile: ARG SERVICE must be declared in the build stage before the build")
		}
		if copyAll > runBuild {
			pr.addf("Dockerfile: scripts/build.sh runs before the sources are copied")
		}
	}
	if cgo < 0 || (runBuild >= 0 && cgo > runBuild) {
		pr.addf("Dockerfile: CGO_ENABLED=0 must be set in the build stage before the build")
	}

	// The runtime stage: non-root, with an entrypoint.
	user := ""
	for _, in := range final {
		if in.Cmd == "USER" {
			user = in.Args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		pr.addf("Dockerfile: the runtime stage must set a non-root USER (got %q)", user)
	} else if !regexp.MustCompile(`^[0-9]+$`).MatchString(u) {
		pr.addf("Dockerfile: USER %q must be numeric, or Kubernetes cannot verify runAsNonRoot", user)
	}
	if index(final, func(in instruction) bool { return in.Cmd == "ENTRYPOINT" }) < 0 {
		pr.addf("Dockerfile: the runtime stage has no ENTRYPOINT")
	}
	if index(final, func(in instruction) bool { return in.Cmd == "RUN" }) >= 0 {
		pr.addf("Dockerfile: the runtime stage has no shell; it cannot RUN")
	}
	return pr
}

// goMinor returns "1.26" from the main module's "go 1.26.0" directive.
func goMinor(t testing.TB) string {
	m := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindSubmatch(readFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func TestDockerfile(t *testing.T) {
	checkDockerfile(readFile(t, "Dockerfile"), goMinor(t)).report(t)
}

func TestDockerfileChecksDetectMistakes(t *testing.T) {
	good := string(readFile(t, "Dockerfile"))
	minor := goMinor(t)
	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"floating builder", "FROM golang:" + minor, "FROM golang:latest #", []string{"latest"}},
		{"go build instead of the script", `bash scripts/build.sh "$SERVICE" /out`, "go build -o /out/$SERVICE ./services/$SERVICE", []string{"scripts/build.sh"}},
		{"cgo on", "ENV CGO_ENABLED=0", "ENV CGO_ENABLED=1", []string{"CGO_ENABLED=0"}},
		{"root user", "USER 65532:65532", "USER root", []string{"non-root"}},
		{"no module layer", "RUN go mod download", "RUN true", []string{"go mod download"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("the Dockerfile no longer contains %q; update this test", tc.old)
			}
			bad := strings.Replace(good, tc.old, tc.new, 1)
			if pr := checkDockerfile([]byte(bad), minor); !pr.contains(tc.want...) {
				t.Errorf("problem %q not reported; got %q", tc.want, pr)
			}
		})
	}
}

// scripts/build.sh holds the one build command, and the Makefile uses it.
func TestBuildScript(t *testing.T) {
	root := repoRoot(t)
	script := filepath.Join(root, "scripts", "build.sh")
	data := readFile(t, "scripts/build.sh")
	if !strings.Contains(string(data), buildCommand) {
		t.Errorf("scripts/build.sh does not run %s", buildCommand)
	}
	if fi, err := os.Stat(script); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("scripts/build.sh must be executable")
	}

	t.Run("Makefile uses it", func(t *testing.T) {
		mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
		if os.IsNotExist(err) {
			t.Skip("no Makefile yet")
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(mk, []byte("scripts/build.sh")) {
			t.Error("the Makefile builds without scripts/build.sh: local and image builds would differ")
		}
	})

	// Run the script for real on a throw-away module laid out like this
	// repository, and check what it produces.
	t.Run("builds a static, trimmed binary", func(t *testing.T) {
		if _, err := exec.LookPath("go"); err != nil {
			t.Skip("no go command")
		}
		dir := t.TempDir()
		files := map[string]string{
			"go.mod": "module example.com/probe\n\ngo 1.26\n",
			// Importing net makes a cgo-enabled build link libc dynamically,
			// so a static result shows that CGO_ENABLED=0 took effect.
			"services/probe/main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n)\n\nfunc main() { fmt.Println(net.ParseIP(\"127.0.0.1\")) }\n",
			"scripts/build.sh":       string(data),
		}
		for name, content := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		out := t.TempDir()
		cmd := exec.Command("bash", filepath.Join(dir, "scripts", "build.sh"), "probe", out)
		cmd.Dir = t.TempDir() // the script must not depend on the caller's directory
		// CGO_ENABLED=1 from outside: the script must override it.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOTOOLCHAIN=local")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/build.sh probe: %v\n%s", err, b)
		}
		bin := filepath.Join(out, "probe")
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("no ELF binary at %s: %v", bin, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary is dynamically linked (CGO_ENABLED=0 not in effect)")
			}
		}
		if f.Section(".symtab") != nil {
			t.Error("the binary has a symbol table (-ldflags=-s not in effect)")
		}
		raw, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(dir)) {
			t.Error("the binary contains the build directory's path (-trimpath not in effect)")
		}

		// Wrong usage fails with a message instead of building something.
		for _, args := range [][]string{{}, {"no-such-service", out}} {
			cmd := exec.Command("bash", append([]string{filepath.Join(dir, "scripts", "build.sh")}, args...)...)
			if b, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("scripts/build.sh %v succeeded: %s", args, b)
			}
		}
	})
}

// The build context keeps what the build needs and drops the rest.
func TestDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(string(readFile(t, ".dockerignore")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/"))
		}
	}
	has := func(p string) bool {
		for _, q := range patterns {
			if q == p {
				return true
			}
		}
		return false
	}
	if !has(".git") {
		t.Error(".dockerignore must exclude .git")
	}
	for _, needed := range []string{"go.mod", "go.sum", "scripts", "scripts/build.sh", "services", "internal", "pkg", "cmd", "*.go", "**/*.go", "*.sql", "**/*.sql"} {
		if has(needed) {
			t.Errorf(".dockerignore excludes %s, which the image build needs", needed)
		}
	}
}

// TestMakefileGoRunTargets: every `$(GO) run ./path` of the Makefile names
// a directory of the repository with Go files (a benchmark target once
// pointed at a path the command had moved from).
func TestMakefileGoRunTargets(t *testing.T) {
	root := repoRoot(t)
	mk := readFile(t, "Makefile")
	paths := regexp.MustCompile(`\$\(GO\) run (\./[^\s@]+)`).FindAllStringSubmatch(string(mk), -1)
	if len(paths) < 4 {
		t.Fatalf("found %d `$(GO) run ./...` lines in the Makefile, expected the bench targets at least", len(paths))
	}
	for _, m := range paths {
		goFiles, _ := filepath.Glob(filepath.Join(root, m[1], "*.go"))
		if len(goFiles) == 0 {
			t.Errorf("Makefile: $(GO) run %s: no Go package there", m[1])
		}
	}
}
