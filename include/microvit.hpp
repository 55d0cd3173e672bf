/*
 * microvit.hpp: a thin, header-only C++17 RAII wrapper over microvit.h.
 * Hand-written (microvit.h is generated); link with libmicrovit as for C.
 *
 *     microvit::Model model = microvit::Model::from_file("microvit-seed.mvit");
 *     microvit::Workspace ws(model);                 // one per thread
 *     std::uint32_t digit = model.classify(pixels, &ws);  // 784 bytes
 *
 *     // A photo or drawing of any size (here an RGBA canvas):
 *     auto canvas = microvit::image(rgba.data(), rgba.size(), width, height, MICROVIT_PIXEL_FORMAT_RGBA8);
 *     if (auto p = model.classify_image(canvas, MICROVIT_POLARITY_AUTO, &ws)) std::printf("%u\n", p->label);
 *     else std::printf("no digit: %s\n", microvit::last_error_message().c_str());
 *
 * - Failures throw microvit::Error, which carries the microvit_status and
 *   the thread's last error message. (Without exceptions, use the C API.)
 * - Model and Workspace are move-only owners of the C objects and free them
 *   in their destructors.
 * - A Model is immutable: its const member functions may be called from
 *   any number of threads at once. A Workspace belongs to one thread at a
 *   time; passing none (nullptr) uses the calling thread's cached one.
 * - classify() with a Workspace and the pointer overload of
 *   classify_batch() never allocate; predict(), classify_image(),
 *   preprocess() and the vector-returning classify_batch() allocate their
 *   result vectors.
 * - An image with no digit is a result, not a failure: classify_image() and
 *   preprocess() return std::nullopt (the reason is last_error_message()).
 */
#ifndef MICROVIT_HPP
#define MICROVIT_HPP

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "microvit.h"

namespace microvit {

/// A failed call: what() is "<function>: <detail>" (the library's message,
/// or the status's text when there is none), status() the stable code.
class Error : public std::runtime_error {
public:
    Error(microvit_status status, const std::string &what) : std::runtime_error(what), status_(status) {}

    /// The stable status code of the failure.
    microvit_status status() const noexcept { return status_; }

    /// The status's short text, e.g. "output buffer too small".
    const char *status_text() const noexcept { return microvit_status_str(status_); }

private:
    microvit_status status_;
};

/// The calling thread's last error message (see microvit_last_error_message()).
inline std::string last_error_message() {
    char buf[MICROVIT_ERROR_MESSAGE_CAPACITY];
    microvit_last_error_message(buf, sizeof buf);
    return std::string(buf);
}

namespace detail {

inline void check(microvit_status status, const char *call) {
    if (status != MICROVIT_STATUS_OK) {
        std::string detail = last_error_message();
        throw Error(status, std::string(call) + ": " + (detail.empty() ? microvit_status_str(status) : detail));
    }
}

struct ModelDeleter {
    void operator()(microvit_model *model) const noexcept { microvit_model_free(model); }
};

struct WorkspaceDeleter {
    void operator()(microvit_workspace *workspace) const noexcept { microvit_workspace_free(workspace); }
};

/// Contiguous containers of bytes: std::vector<std::uint8_t>, std::array,
/// std::basic_string_view<std::uint8_t>, ...
template <class C>
using byte_container = std::enable_if_t<
    std::is_same_v<std::remove_cv_t<std::remove_pointer_t<decltype(std::data(std::declval<const C &>()))>>,
                   std::uint8_t>>;

}  // namespace detail

/// The library version, e.g. "0.2.0".
inline std::string_view version() noexcept { return microvit_version(); }

/// Chooses the backend for the whole process; throws for an unavailable one.
inline void set_backend(microvit_backend backend) {
    detail::check(microvit_set_backend(backend), "microvit_set_backend");
}

/// The backend in use (never AUTO).
inline microvit_backend backend() noexcept { return microvit_get_backend(); }

inline std::string_view backend_name(microvit_backend backend) noexcept { return microvit_backend_name(backend); }

/// Frees the calling thread's cached workspace (see the C function).
inline void release_thread_cache() noexcept { microvit_thread_cache_release(); }

/// One image's classification.
struct Prediction {
    std::uint32_t label = 0;
    std::vector<float> logits;
    std::vector<float> probabilities;
};

/// One photo's or drawing's classification (Model::classify_image).
struct ImagePrediction {
    std::uint32_t label = 0;
    std::vector<float> probabilities;
    /// What the model saw: image_side x image_side bytes, white on black.
    std::vector<std::uint8_t> input;
    /// Where the digit was found, and how it was read.
    microvit_digit digit{};
};

/// Describes pixels in memory as a microvit_image (nothing is copied; the
/// pixels must outlive the calls it is passed to). stride 0: rows packed.
inline microvit_image image(const std::uint8_t *pixels, std::size_t len, std::uint32_t width, std::uint32_t height,
                            microvit_pixel_format format, std::size_t stride = 0) noexcept {
    microvit_image img{};
    img.pixels = pixels;
    img.len = len;
    img.width = width;
    img.height = height;
    img.stride = stride;
    img.format = format;
    return img;
}

class Workspace;

/// A loaded model. Move-only; freed by the destructor.
class Model {
public:
    /// Loads a model file.
    static Model from_file(const std::string &path) {
        microvit_model *model = nullptr;
        detail::check(microvit_model_load_file(path.c_str(), &model), "microvit_model_load_file");
        return Model(model);
    }

    /// Loads a model from memory, copying it.
    static Model from_memory(const void *data, std::size_t size) {
        microvit_model *model = nullptr;
        detail::check(microvit_model_load(static_cast<const std::uint8_t *>(data), size, &model),
                      "microvit_model_load");
        return Model(model);
    }

    /// Loads a model in place (zero-copy). The buffer must be
    /// MICROVIT_BORROWED_ALIGN-byte aligned and stay alive and unchanged
    /// for as long as the returned Model exists.
    static Model from_memory_borrowed(const void *data, std::size_t size) {
        microvit_model *model = nullptr;
        detail::check(microvit_model_load_borrowed(static_cast<const std::uint8_t *>(data), size, &model),
                      "microvit_model_load_borrowed");
        return Model(model);
    }

    const microvit_shape &shape() const noexcept { return shape_; }

    /// The backend this model's inferences run on (f32 models: scalar).
    microvit_backend backend() const {
        microvit_backend b = MICROVIT_BACKEND_SCALAR;
        detail::check(microvit_model_backend(get(), &b), "microvit_model_backend");
        return b;
    }

    /// Pixels per image (image_side squared).
    std::size_t pixels() const noexcept { return shape_.pixels; }

    std::size_t classes() const noexcept { return shape_.classes; }

    /// The class of one image of pixels() bytes. With a workspace, never
    /// allocates.
    std::uint32_t classify(const std::uint8_t *pixels, std::size_t count, Workspace *workspace = nullptr) const;

    template <class Pixels, class = detail::byte_container<Pixels>>
    std::uint32_t classify(const Pixels &pixels, Workspace *workspace = nullptr) const {
        return classify(std::data(pixels), std::size(pixels), workspace);
    }

    /// The class, logits and probabilities of one image.
    Prediction predict(const std::uint8_t *pixels, std::size_t count, Workspace *workspace = nullptr) const;

    template <class Pixels, class = detail::byte_container<Pixels>>
    Prediction predict(const Pixels &pixels, Workspace *workspace = nullptr) const {
        return predict(std::data(pixels), std::size(pixels), workspace);
    }

    /// Classes of image_count images stored back to back, into out_classes
    /// (room for capacity entries). Never allocates with a workspace.
    void classify_batch(const std::uint8_t *pixels, std::size_t image_count, std::uint32_t *out_classes,
                        std::size_t capacity, Workspace *workspace = nullptr) const;

    /// Classes of all the images in pixels (a multiple of pixels() bytes).
    template <class Pixels, class = detail::byte_container<Pixels>>
    std::vector<std::uint32_t> classify_batch(const Pixels &pixels, Workspace *workspace = nullptr) const {
        std::size_t count = shape_.pixels ? std::size(pixels) / shape_.pixels : 0;
        if (count * shape_.pixels != std::size(pixels)) {
            throw Error(MICROVIT_STATUS_INVALID_ARGUMENT,
                        "microvit::Model::classify_batch: the pixel count is not a multiple of pixels()");
        }
        std::vector<std::uint32_t> classes(count);
        classify_batch(std::data(pixels), count, classes.data(), classes.size(), workspace);
        return classes;
    }

    /// Classifies a photo or drawing of any size (microvit_classify_image()):
    /// std::nullopt when it holds no digit.
    std::optional<ImagePrediction> classify_image(const microvit_image &image,
                                                  microvit_polarity polarity = MICROVIT_POLARITY_AUTO,
                                                  Workspace *workspace = nullptr) const;

    /// The model input made from a photo or drawing (microvit_preprocess()):
    /// image_side x image_side bytes, or std::nullopt when it holds no digit.
    std::optional<std::vector<std::uint8_t>> preprocess(const microvit_image &image,
                                                        microvit_polarity polarity = MICROVIT_POLARITY_AUTO,
                                                        Workspace *workspace = nullptr) const;

    /// The C handle, for calling the C API directly.
    microvit_model *get() const noexcept { return handle_.get(); }

private:
    explicit Model(microvit_model *model) : handle_(model) {
        detail::check(microvit_model_shape(model, &shape_), "microvit_model_shape");
    }

    std::unique_ptr<microvit_model, detail::ModelDeleter> handle_;
    microvit_shape shape_{};
};

/// Scratch memory for one thread's inferences with models of one shape and
/// encoding. Move-only; freed by the destructor.
class Workspace {
public:
    explicit Workspace(const Model &model) {
        microvit_workspace *workspace = nullptr;
        detail::check(microvit_workspace_create(model.get(), &workspace), "microvit_workspace_create");
        handle_.reset(workspace);
    }

    microvit_workspace *get() const noexcept { return handle_.get(); }

private:
    std::unique_ptr<microvit_workspace, detail::WorkspaceDeleter> handle_;
};

namespace detail {
inline microvit_workspace *handle(Workspace *workspace) noexcept {
    return workspace ? workspace->get() : nullptr;
}
}  // namespace detail

inline std::uint32_t Model::classify(const std::uint8_t *pixels, std::size_t count, Workspace *workspace) const {
    std::uint32_t label = 0;
    detail::check(microvit_classify(get(), detail::handle(workspace), pixels, count, &label, nullptr, 0, nullptr, 0),
                  "microvit_classify");
    return label;
}

inline Prediction Model::predict(const std::uint8_t *pixels, std::size_t count, Workspace *workspace) const {
    Prediction p;
    p.logits.resize(shape_.classes);
    p.probabilities.resize(shape_.classes);
    detail::check(microvit_classify(get(), detail::handle(workspace), pixels, count, &p.label, p.logits.data(),
                                    p.logits.size(), p.probabilities.data(), p.probabilities.size()),
                  "microvit_classify");
    return p;
}

inline void Model::classify_batch(const std::uint8_t *pixels, std::size_t image_count, std::uint32_t *out_classes,
                                  std::size_t capacity, Workspace *workspace) const {
    // The product cannot overflow unnoticed: the C call checks it.
    std::size_t pixel_count = image_count * shape_.pixels;
    if (shape_.pixels && pixel_count / shape_.pixels != image_count) {
        throw Error(MICROVIT_STATUS_INVALID_ARGUMENT, "microvit::Model::classify_batch: image_count overflows");
    }
    detail::check(microvit_classify_batch(get(), detail::handle(workspace), image_count, pixels, pixel_count,
                                          out_classes, capacity, nullptr, 0, nullptr, 0),
                  "microvit_classify_batch");
}

inline std::optional<ImagePrediction> Model::classify_image(const microvit_image &image, microvit_polarity polarity,
                                                          Workspace *workspace) const {
    ImagePrediction p;
    p.probabilities.resize(shape_.classes);
    p.input.resize(shape_.pixels);
    microvit_status status =
        microvit_classify_image(get(), detail::handle(workspace), &image, polarity, &p.label, nullptr, 0,
                                p.probabilities.data(), p.probabilities.size(), p.input.data(), p.input.size(),
                                &p.digit);
    if (status == MICROVIT_STATUS_NO_DIGIT) {
        return std::nullopt;
    }
    detail::check(status, "microvit_classify_image");
    return p;
}

inline std::optional<std::vector<std::uint8_t>> Model::preprocess(const microvit_image &image,
                                                                  microvit_polarity polarity,
                                                                  Workspace *workspace) const {
    std::vector<std::uint8_t> input(shape_.pixels);
    microvit_status status =
        microvit_preprocess(get(), detail::handle(workspace), &image, polarity, input.data(), input.size(), nullptr);
    if (status == MICROVIT_STATUS_NO_DIGIT) {
        return std::nullopt;
    }
    detail::check(status, "microvit_preprocess");
    return input;
}

}  // namespace microvit

#endif  // MICROVIT_HPP
