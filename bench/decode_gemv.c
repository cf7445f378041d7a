/* The matrix products of one SmolLM2-135M decoding step alone (30 layers' qkv 960×576, o 576×576,
 * gate|up 3072×576, down 576×1536, then the tied LM head 49152×576: 538 MB of fp32 weights, distinct
 * per layer so they stream from memory), y (M, N) = x (M, K) · Wᵀ, through dnnl_sgemm (prm's
 * default backend), OpenBLAS's cblas_sgemv (M = 1 only) and cblas_sgemm, on 2 threads; best of 20
 * steps; then the same read-bandwidth probe as `prm bench generate` (a parallel sum over 512 MB).
 *   gcc -O3 -march=native -fopenmp -o decode_gemv bench/decode_gemv.c -ldnnl -lopenblas
 *   $LOCK ./decode_gemv 1; $LOCK ./decode_gemv 8 */
#include <dnnl.h>
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
void openblas_set_num_threads(int);
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int M = argc>1?atoi(argv[1]):1;
  int shapes[5][2]={{960,576},{576,576},{3072,576},{576,1536},{49152,576}};
  // 30 layers' worth of distinct matrices so weights stream from DRAM
  size_t layerFloats=0; for(int s=0;s<4;s++) layerFloats+=(size_t)shapes[s][0]*shapes[s][1];
  float*W=aligned_alloc(64,30*layerFloats*4); for(size_t i=0;i<30*layerFloats;i++)W[i]=(i%13)*0.01f;
  float*H=aligned_alloc(64,49152*576*4); for(size_t i=0;i<49152*576;i++)H[i]=(i%7)*0.01f;
  float*x=aligned_alloc(64,8*1536*4),*y=aligned_alloc(64,8*49152*4); for(int i=0;i<8*1536;i++)x[i]=0.1f;
  omp_set_num_threads(2); openblas_set_num_threads(2);
  const char*names[3]={"dnnl_sgemm","cblas_sgemv","cblas_sgemm"};
  for(int impl=0;impl<3;impl++){ if(impl==1&&M!=1)continue;
    double best=1e9;
    for(int rep=0;rep<20;rep++){ double t0=now();
      float*w=W;
      for(int l=0;l<30;l++) for(int s=0;s<4;s++){int N=shapes[s][0],K=shapes[s][1];
        if(impl==0) dnnl_sgemm('N','T',M,N,K,1,x,K,w,K,0,y,N);
        else if(impl==1) cblas_sgemv(CblasRowMajor,CblasNoTrans,N,K,1,w,K,x,1,0,y,1);
        else cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,x,K,w,K,0,y,N);
        w+=(size_t)N*K;}
      int N=49152,K=576;
      if(impl==0) dnnl_sgemm('N','T',M,N,K,1,x,K,H,K,0,y,N);
      else if(impl==1) cblas_sgemv(CblasRowMajor,CblasNoTrans,N,K,1,H,K,x,1,0,y,1);
      else cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,x,K,H,K,0,y,N);
      double t=now()-t0; if(t<best)best=t;}
    double bytes=(30*layerFloats+49152.0*576)*4;
    printf("M=%d %-12s %.2f ms per step (121 products), %.1f GB/s\n",M,names[impl],best*1e3,bytes/best/1e9);
  }
  // bandwidth probe
  size_t n=64<<20; unsigned long*b=aligned_alloc(64,n*8); for(size_t i=0;i<n;i++)b[i]=i;
  double best=1e9; unsigned long s=0; for(int r=0;r<3;r++){double t0=now();
   #pragma omp parallel for reduction(+:s) num_threads(2)
   for(size_t i=0;i<n;i++)s+=b[i]; double t=now()-t0;if(t<best)best=t;}
  printf("read bandwidth %.1f GB/s (%lu)\n",n*8/best/1e9,s%2);
}
