// RTNeural's compile-time API on issue 10's streaming workload: one step of
// LSTM(1 -> 32) + Dense(1) and of GRU(1 -> 32) + Dense(1), the bar kiln's
// `Streaming::step` is measured against (benches/rnn_step.rs, BENCHMARKS.md
// "Streaming RNN step (issue 10)").
//
// The weights, the input signal and kiln's outputs come from
// `RNN_STEP_DUMP=<dir> cargo bench --bench rnn_step`, which writes <dir>/lstm.txt
// and <dir>/gru.txt: one `name count values...` line per array, the weights in
// Keras's layouts exactly as kiln's models get them (f32), so both libraries run
// the same network on the same input. RTNeural's setters take Keras layouts
// (LSTM gates i, f, c, o; GRU reset_after with a (2, 3u) bias) and reorder
// them internally.
//
// For each model: the largest output deviation from kiln's `Streaming::step`
// and from the f64 cell over the 10,000-step signal (fresh state), then three
// rounds of 1e6 steps with the state carried over, the input cycling through
// the signal as in the Rust bench; prints each round's wall-clock and
// thread-CPU ns per step and their medians.
//
// Build and run: benches/rtneural/run.sh (RTNEURAL_DIR=<RTNeural checkout>).

#include <RTNeural/RTNeural.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace
{
using Arrays = std::map<std::string, std::vector<double>>;

constexpr int units = 32;
constexpr long timed_steps = 1000000;
constexpr int rounds = 3;

Arrays read_dump(const std::string& path)
{
    std::ifstream file(path);
    if(!file)
    {
        std::fprintf(stderr, "cannot read %s (run `RNN_STEP_DUMP=<dir> cargo bench --bench rnn_step -- dump` first)\n", path.c_str());
        std::exit(1);
    }
    Arrays arrays;
    std::string line;
    while(std::getline(file, line))
    {
        std::istringstream words(line);
        std::string name, word;
        size_t count = 0;
        words >> name >> count;
        std::vector<double> values;
        values.reserve(count);
        // strtod, not operator>>: the latter rejects subnormals.
        while(words >> word)
            values.push_back(std::strtod(word.c_str(), nullptr));
        if(values.size() != count)
        {
            std::fprintf(stderr, "%s: `%s` has %zu values, header says %zu\n", path.c_str(), name.c_str(), values.size(), count);
            std::exit(1);
        }
        arrays[name] = std::move(values);
    }
    return arrays;
}

const std::vector<double>& get(const Arrays& arrays, const std::string& name, size_t count)
{
    auto it = arrays.find(name);
    if(it == arrays.end() || it->second.size() != count)
    {
        std::fprintf(stderr, "dump lacks `%s` with %zu values\n", name.c_str(), count);
        std::exit(1);
    }
    return it->second;
}

// A row-major (rows, cols) Keras array as RTNeural's vector-of-rows.
std::vector<std::vector<float>> rows_of(const std::vector<double>& v, size_t rows, size_t cols)
{
    std::vector<std::vector<float>> out(rows, std::vector<float>(cols));
    for(size_t r = 0; r < rows; ++r)
        for(size_t c = 0; c < cols; ++c)
            out[r][c] = (float)v[r * cols + c];
    return out;
}

std::vector<float> floats(const std::vector<double>& v)
{
    return std::vector<float>(v.begin(), v.end());
}

// Keras's Dense(32 -> 1) kernel is (32, 1); RTNeural wants [out][in], the same 32 values.
template <typename DenseLayer>
void set_dense(DenseLayer& dense, const Arrays& a)
{
    dense.setWeights(rows_of(get(a, "dense/kernel", units), 1, units));
    const float bias = (float)get(a, "dense/bias", 1)[0];
    dense.setBias(&bias);
}

double thread_cpu_seconds()
{
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <typename Model>
void run(const char* label, Model& model, const Arrays& a)
{
    const auto input = floats(get(a, "input", 10000));
    const auto& kiln = get(a, "kiln", input.size());
    const auto& exact = get(a, "exact", input.size());

    model.reset();
    double from_kiln = 0.0, from_exact = 0.0;
    for(size_t t = 0; t < input.size(); ++t)
    {
        const double y = model.forward(&input[t]);
        from_kiln = std::max(from_kiln, std::abs(y - kiln[t]));
        from_exact = std::max(from_exact, std::abs(y - exact[t]));
    }
    std::printf("%s: largest output deviation over %zu steps: from kiln's Streaming::step %.2e, from the f64 cell %.2e\n",
        label, input.size(), from_kiln, from_exact);
    if(!(from_kiln < 1e-5))
    {
        std::fprintf(stderr, "%s: RTNeural and kiln disagree by %.3e\n", label, from_kiln);
        std::exit(1);
    }

    // Warm-up, then the timed rounds; the state carries over throughout.
    volatile float sink = 0.0f;
    size_t t = 0;
    auto steps = [&](long n) {
        float sum = 0.0f;
        for(long i = 0; i < n; ++i)
        {
            if(++t == input.size())
                t = 0;
            sum += model.forward(&input[t]);
        }
        sink = sink + sum;
    };
    steps(100000);
    std::vector<double> wall, cpu;
    for(int r = 0; r < rounds; ++r)
    {
        const auto w0 = std::chrono::steady_clock::now();
        const double c0 = thread_cpu_seconds();
        steps(timed_steps);
        const double c1 = thread_cpu_seconds();
        const auto w1 = std::chrono::steady_clock::now();
        wall.push_back(std::chrono::duration<double, std::nano>(w1 - w0).count() / (double)timed_steps);
        cpu.push_back((c1 - c0) * 1e9 / (double)timed_steps);
    }
    std::printf("%s: ns per step over %d rounds of %ld steps: wall", label, rounds, timed_steps);
    for(double w : wall)
        std::printf(" %.1f", w);
    std::printf(" (median %.1f); thread CPU", median(wall));
    for(double c : cpu)
        std::printf(" %.1f", c);
    std::printf(" (median %.1f)\n", median(cpu));
}
} // namespace

int main(int argc, char** argv)
{
    if(argc != 2)
    {
        std::fprintf(stderr, "usage: %s <dump dir with lstm.txt and gru.txt>\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    std::printf("RTNeural compile-time API (ModelT), backend %s, RTNEURAL_DEFAULT_ALIGNMENT %d, Eigen %d.%d.%d, "
                "Eigen SIMD: %s\n",
#if RTNEURAL_USE_EIGEN
        "Eigen",
#elif RTNEURAL_USE_XSIMD
        "xsimd",
#else
        "STL",
#endif
        RTNEURAL_DEFAULT_ALIGNMENT, EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION,
        Eigen::SimdInstructionSetsInUse());

    {
        const Arrays a = read_dump(dir + "/lstm.txt");
        static RTNeural::ModelT<float, 1, 1, RTNeural::LSTMLayerT<float, 1, units>, RTNeural::DenseT<float, units, 1>> model;
        auto& lstm = model.get<0>();
        lstm.setWVals(rows_of(get(a, "lstm/lstm_cell/kernel", 4 * units), 1, 4 * units));
        lstm.setUVals(rows_of(get(a, "lstm/lstm_cell/recurrent_kernel", units * 4 * units), units, 4 * units));
        lstm.setBVals(floats(get(a, "lstm/lstm_cell/bias", 4 * units)));
        set_dense(model.get<1>(), a);
        run("LSTM(1 -> 32) + Dense(1)", model, a);
    }
    {
        const Arrays a = read_dump(dir + "/gru.txt");
        static RTNeural::ModelT<float, 1, 1, RTNeural::GRULayerT<float, 1, units>, RTNeural::DenseT<float, units, 1>> model;
        auto& gru = model.get<0>();
        gru.setWVals(rows_of(get(a, "gru/gru_cell/kernel", 3 * units), 1, 3 * units));
        gru.setUVals(rows_of(get(a, "gru/gru_cell/recurrent_kernel", units * 3 * units), units, 3 * units));
        gru.setBVals(rows_of(get(a, "gru/gru_cell/bias", 2 * 3 * units), 2, 3 * units));
        set_dense(model.get<1>(), a);
        run("GRU(1 -> 32) + Dense(1)", model, a);
    }
    return 0;
}
