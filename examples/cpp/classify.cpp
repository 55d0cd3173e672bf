// classify (C++): the C example's test-set run through the RAII wrapper in
// microvit.hpp, with the model shared by several threads.
//
//   classify_cpp MODEL.mvit IMAGES.idx LABELS.idx [--limit N] [--threads N]
//
// IMAGES.idx and LABELS.idx are the plain (gunzipped) idx files.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "microvit.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double micros_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

std::uint32_t be32(const std::uint8_t *p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
}

// An idx file of unsigned bytes: its dimensions and data.
struct Idx {
    std::vector<std::uint32_t> dims;
    std::vector<std::uint8_t> data;
};

Idx read_idx(const std::string &path, unsigned rank) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::size_t header = 4 + 4 * std::size_t(rank);
    if (bytes.size() < header || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 ||
        bytes[3] != rank) {
        throw std::runtime_error(path + ": not an idx file of bytes with " + std::to_string(rank) +
                                 " dimensions (gunzip it first?)");
    }
    Idx idx;
    std::size_t need = 1;
    for (unsigned i = 0; i < rank; i++) {
        idx.dims.push_back(be32(&bytes[4 + 4 * i]));
        need *= idx.dims.back();
    }
    if (bytes.size() - header != need) throw std::runtime_error(path + ": size disagrees with its header");
    idx.data.assign(bytes.begin() + std::ptrdiff_t(header), bytes.end());
    return idx;
}

struct Share {
    std::size_t begin = 0, end = 0, correct = 0, mismatches = 0;
    double single_us = 0, batch_us = 0;
    std::string error;
};

// One thread's work: per-image with its own Workspace, then one batch call
// with the thread's cached workspace; both must agree.
void run(const microvit::Model &model, const Idx &images, const Idx &labels, Share &share) {
    try {
        const std::size_t n = model.pixels();
        const std::uint8_t *pixels = images.data.data();
        microvit::Workspace ws(model);
        std::vector<std::uint32_t> single;
        single.reserve(share.end - share.begin);
        auto t0 = Clock::now();
        for (std::size_t i = share.begin; i < share.end; i++) {
            std::uint32_t digit = model.classify(pixels + i * n, n, &ws);
            single.push_back(digit);
            share.correct += digit == labels.data[i];
        }
        share.single_us = micros_since(t0);
        std::vector<std::uint32_t> batch(share.end - share.begin);
        t0 = Clock::now();
        model.classify_batch(pixels + share.begin * n, batch.size(), batch.data(), batch.size());
        share.batch_us = micros_since(t0);
        for (std::size_t i = 0; i < batch.size(); i++) share.mismatches += batch[i] != single[i];
        microvit::release_thread_cache();
    } catch (const std::exception &e) {
        share.error = e.what();
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: classify_cpp MODEL.mvit IMAGES.idx LABELS.idx [--limit N] [--threads N]\n");
        return 2;
    }
    std::size_t limit = 0;
    unsigned threads = 1;
    for (int i = 4; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--limit") {
            limit = std::strtoul(argv[i + 1], nullptr, 10);
        } else if (flag == "--threads") {
            threads = unsigned(std::strtoul(argv[i + 1], nullptr, 10));
        } else {
            std::fprintf(stderr, "classify_cpp: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    try {
        // Errors are exceptions with the stable status code.
        try {
            microvit::Model::from_file("/nonexistent/model.mvit");
            std::fprintf(stderr, "classify_cpp: loading a missing file did not fail\n");
            return 1;
        } catch (const microvit::Error &e) {
            if (e.status() != MICROVIT_STATUS_IO_ERROR) throw;
        }

        const microvit::Model model = microvit::Model::from_file(argv[1]);
        const microvit_shape &shape = model.shape();
        std::printf("microvit %s (C++), backend %s; model %s: %ux%u pixels -> %u classes, %llu parameters\n",
                    std::string(microvit::version()).c_str(),
                    std::string(microvit::backend_name(model.backend())).c_str(), argv[1], shape.image_side,
                    shape.image_side, shape.classes, static_cast<unsigned long long>(shape.parameter_count));

        const Idx images = read_idx(argv[2], 3), labels = read_idx(argv[3], 1);
        if (std::size_t(images.dims[1]) * images.dims[2] != model.pixels() || images.dims[0] != labels.dims[0]) {
            std::fprintf(stderr, "classify_cpp: images and labels do not fit the model or each other\n");
            return 1;
        }
        std::size_t count = images.dims[0];
        if (limit && limit < count) count = limit;
        threads = std::max(1u, std::min<unsigned>(threads, unsigned(std::min<std::size_t>(count, 64))));

        std::vector<Share> shares(threads);
        for (unsigned t = 0, begin = 0; t < threads; t++) {
            std::size_t n = count / threads + (t < count % threads);
            shares[t].begin = begin;
            shares[t].end = begin + n;
            begin += unsigned(n);
        }
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < threads; t++) {
            pool.emplace_back(run, std::cref(model), std::cref(images), std::cref(labels), std::ref(shares[t]));
        }
        run(model, images, labels, shares[0]);
        for (auto &th : pool) th.join();

        Share total;
        for (const Share &s : shares) {
            if (!s.error.empty()) throw std::runtime_error(s.error);
            total.correct += s.correct;
            total.mismatches += s.mismatches;
            total.single_us += s.single_us;
            total.batch_us += s.batch_us;
        }
        // The pixel-container overloads and predict() agree with the rest.
        std::vector<std::uint8_t> first(images.data.begin(), images.data.begin() + std::ptrdiff_t(model.pixels()));
        microvit::Prediction p = model.predict(first);
        if (p.label != model.classify(first) || p.logits.size() != model.classes() ||
            model.classify_batch(first).at(0) != p.label) {
            total.mismatches++;
        }
        // The same digit drawn three times larger, dark on a transparent RGBA
        // canvas, through classify_image(): prepared back into (nearly) the
        // digit itself, so the same class; and a blank canvas has no digit.
        const std::uint32_t side = shape.image_side, scale = 3, canvas_side = 4 * side * scale / 2;
        std::vector<std::uint8_t> canvas(std::size_t(canvas_side) * canvas_side * 4, 0);
        for (std::uint32_t y = 0; y < side * scale; y++) {
            for (std::uint32_t x = 0; x < side * scale; x++) {
                std::uint8_t *px = &canvas[(std::size_t(y + side) * canvas_side + x + side / 2) * 4];
                px[3] = first[(y / scale) * side + x / scale];  // black ink, its alpha the digit
            }
        }
        auto drawn = model.classify_image(
            microvit::image(canvas.data(), canvas.size(), canvas_side, canvas_side, MICROVIT_PIXEL_FORMAT_RGBA8));
        if (!drawn || drawn->label != p.label || drawn->input.size() != model.pixels() ||
            drawn->digit.polarity != MICROVIT_POLARITY_DARK_ON_LIGHT) {
            total.mismatches++;
        }
        // An empty batch is no images, not an error.
        if (!model.classify_batch(std::vector<std::uint8_t>()).empty()) {
            total.mismatches++;
        }
        // A failure names the call and says what is wrong, once.
        try {
            microvit::Model::from_file("/nonexistent/model.mvit");
            total.mismatches++;
        } catch (const microvit::Error &e) {
            const std::string what = e.what();
            const std::string expected = "microvit_model_load_file: cannot read /nonexistent/model.mvit";
            if (e.status() != MICROVIT_STATUS_IO_ERROR || what.rfind(expected, 0) != 0 ||
                what.find("cannot read", expected.size()) != std::string::npos) {
                std::fprintf(stderr, "classify_cpp: unexpected error text: %s\n", what.c_str());
                total.mismatches++;
            }
        }
        std::fill(canvas.begin(), canvas.end(), std::uint8_t(0));
        if (model.classify_image(microvit::image(canvas.data(), canvas.size(), canvas_side, canvas_side,
                                                 MICROVIT_PIXEL_FORMAT_RGBA8))) {
            total.mismatches++;
        }

        std::printf("images: %zu (%u thread%s)\n", count, threads, threads == 1 ? "" : "s");
        std::printf("accuracy: %.2f %% (%zu/%zu)\n", count ? 100.0 * double(total.correct) / double(count) : 0.0,
                    total.correct, count);
        std::printf("batch: %s\n",
                    total.mismatches ? "DIFFERS from per-image results" : "identical to per-image results");
        std::printf("latency: %.1f us/digit single, %.1f us/digit batch (per thread)\n",
                    count ? total.single_us / double(count) : 0.0, count ? total.batch_us / double(count) : 0.0);
        return total.mismatches ? 1 : 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "classify_cpp: %s\n", e.what());
        return 1;
    }
}
