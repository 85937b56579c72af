#!/usr/bin/env bash
# Builds llama.cpp's Vulkan backend from the source of the llama-cpp-python in .venv (the same llama.cpp, so
# its llama.h is the one the bindings were written for) and runs tests/test_gpu_offload.py on it, on Mesa's
# lavapipe (a Vulkan device in software): offloading proven without a GPU. Run after tests/run.sh made .venv.
# The build (about 10 minutes on 2 cores) is kept in ~/.cache/qwen3asr-tests. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/qwen3asr-tests/llama-vulkan-$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -e "$cache/libllama.so" ]; then
    # Debian's packages: glslc compiles the shaders, lavapipe (mesa-vulkan-drivers) runs them.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            cmake g++ glslc spirv-headers libvulkan-dev mesa-vulkan-drivers >/dev/null
    fi
    # ggml-vulkan needs Vulkan headers of 1.3.261 or later (VK_EXT_layer_settings); Debian 12 has 1.3.239.
    # Debian 13's libvulkan-dev (1.4.309) is unpacked for the build only: a private apt list, nothing installed.
    headers=/usr/include
    if ! grep -q "VK_EXT_layer_settings" /usr/include/vulkan/vulkan_core.h 2>/dev/null; then
        mkdir -p "$work/apt/lists/partial" "$work/apt/archives/partial"
        echo "deb http://deb.debian.org/debian trixie main" > "$work/apt/trixie.list"
        apt_private=(-o "Dir::Etc::SourceList=$work/apt/trixie.list" -o "Dir::Etc::SourceParts=-" -o APT::Sandbox::User=root
            -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache::Archives=$work/apt/archives")
        apt-get "${apt_private[@]}" update -qq >/dev/null
        (cd "$work" && apt-get "${apt_private[@]}" download libvulkan-dev/trixie >/dev/null)
        dpkg -x "$work"/libvulkan-dev_*.deb "$work/vulkan"
        headers="$work/vulkan/usr/include"
    fi
    .venv/bin/python -m pip download --quiet --no-deps --no-binary :all: -d "$work" "llama-cpp-python==$version"
    tar -xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
    cmake -S "$work/llama_cpp_python-$version/vendor/llama.cpp" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_VULKAN=ON -DVulkan_INCLUDE_DIR="$headers" -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
    cmake --build "$work/build" --target llama mtmd -j"$(nproc)" >/dev/null
    mkdir -p "$cache"
    cp -a "$work"/build/bin/lib*.so* "$cache/"
fi

# lavapipe is a CPU-type Vulkan device, which ggml-vulkan uses only when named (ggml_vk_instance_init).
# The libraries' RUNPATH names the build folder, gone after the first run: the cache is put on the search path.
QWEN3ASR_TEST_GPU_LIB="$cache" GGML_VK_VISIBLE_DEVICES=0 PATH="$PWD/.venv/bin:$PATH" \
    LD_LIBRARY_PATH="$cache${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    .venv/bin/python -m pytest -q -s tests/test_gpu_offload.py "$@"
